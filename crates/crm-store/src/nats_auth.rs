//! Who may do what on the NATS server that holds the event log.
//!
//! The log is only as trustworthy as the server's authorization: anyone who can publish
//! on an aggregate's subject can append a message every later command on that aggregate
//! trips over, and the stream denies deletes, so nobody could remove it. The service
//! therefore connects as one of two users, each allowed only the subjects its work needs:
//!
//! | user | who | may publish on | may subscribe to |
//! |---|---|---|---|
//! | `crm-writer` | the command side | the stream's subjects; stream info and create; direct and message gets; the data keys' bucket (`KV_CRM_KEYS`: put, create, message get, delete and purge, history consumers) | its own inbox |
//! | `crm-reader` | projectors and tools | stream info; its consumers (create, info, delete, next); direct and message gets; the data keys' bucket info and message gets (keys are wrapped: useless without the master key) | its own inbox |
//!
//! Neither may purge, delete or reconfigure the stream, touch another stream, or use any
//! JetStream API beyond those listed (never `$JS.>`: some admin APIs answer anyone who may
//! publish there). [`Permissions::of`] is the one list; the embedded server's
//! configuration is rendered from it, and the README prints it for external servers.
//!
//! The users authenticate with NATS nkeys (ed25519): the server's configuration holds only
//! public keys; each user's seed is a file the service reads ([`NatsUsers`]).

use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// A NATS user of the service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum NatsUser {
    /// Appends commands' events: the command side (`--role all` or `commands`).
    Writer,
    /// Reads the stream: projectors (`--role all`, `projector`, `query`) and tools.
    Reader,
}

impl NatsUser {
    pub const ALL: [Self; 2] = [Self::Writer, Self::Reader];

    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Writer => "crm-writer",
            Self::Reader => "crm-reader",
        }
    }

    /// The inbox prefix the user's connections use (and the only one it may subscribe
    /// to): one user cannot read the replies sent to another.
    #[must_use]
    pub fn inbox_prefix(self) -> String {
        format!("_INBOX_{}", self.name().replace('-', "_"))
    }
}

/// The subjects a user may publish on and subscribe to, for the stream `stream` whose
/// subjects are `<prefix>.>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Permissions {
    pub publish: Vec<String>,
    pub subscribe: Vec<String>,
}

impl Permissions {
    #[must_use]
    pub fn of(user: NatsUser, stream: &str, prefix: &str) -> Self {
        let api = |s: &str| format!("$JS.API.{s}");
        // Both read single messages: the command side loads aggregates with direct gets,
        // tools and tests read by sequence.
        let mut publish = vec![
            api("INFO"),
            api(&format!("STREAM.INFO.{stream}")),
            api(&format!("DIRECT.GET.{stream}")),
            api(&format!("DIRECT.GET.{stream}.>")),
            api(&format!("STREAM.MSG.GET.{stream}")),
        ];
        // The data keys (crypto-shredding): both read them (wrapped: useless without the
        // master key), the command side makes and destroys them.
        let keys = format!("KV_{}", crate::keys::KEYS_BUCKET);
        publish.extend([
            api(&format!("STREAM.INFO.{keys}")),
            api(&format!("STREAM.MSG.GET.{keys}")),
        ]);
        match user {
            NatsUser::Writer => publish.extend([
                format!("{prefix}.>"),
                // Created on first start when missing; an existing stream is only checked.
                api(&format!("STREAM.CREATE.{stream}")),
                format!("$KV.{}.>", crate::keys::KEYS_BUCKET),
                api(&format!("STREAM.CREATE.{keys}")),
                // Destroying a key erases its every revision, then purges the entry.
                api(&format!("STREAM.MSG.DELETE.{keys}")),
                api(&format!("STREAM.PURGE.{keys}")),
                // A key's revisions are listed with an ordered consumer.
                api(&format!("CONSUMER.CREATE.{keys}")),
                api(&format!("CONSUMER.CREATE.{keys}.>")),
            ]),
            NatsUser::Reader => publish.extend([
                // Ordered consumers: created, pulled from, recreated after a gap.
                api(&format!("CONSUMER.CREATE.{stream}")),
                api(&format!("CONSUMER.CREATE.{stream}.>")),
                api(&format!("CONSUMER.INFO.{stream}.>")),
                api(&format!("CONSUMER.DELETE.{stream}.>")),
                api(&format!("CONSUMER.MSG.NEXT.{stream}.>")),
            ]),
        }
        Self {
            publish,
            subscribe: vec![format!("{}.>", user.inbox_prefix())],
        }
    }

    /// The user's entry in a nats-server `authorization { users = [...] }` block.
    #[must_use]
    pub fn render(&self, nkey: &str) -> String {
        let list = |subjects: &[String]| {
            subjects
                .iter()
                .map(|s| format!("\"{s}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "    {{ nkey: \"{nkey}\", permissions: {{ publish: {{ allow: [{}] }}, subscribe: {{ allow: [{}] }} }} }}",
            list(&self.publish),
            list(&self.subscribe)
        )
    }
}

/// Why the users' keys could not be read or created.
#[derive(Debug, thiserror::Error)]
pub enum NatsAuthError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{path} does not hold a NATS user seed (SU...): {message}")]
    BadSeed { path: PathBuf, message: String },
}

/// The nkey seeds of the service's users, kept as `<dir>/<user>.nk` (mode 0600, in a 0700
/// directory). Created on first use; kept across restarts, so tools configured with a
/// seed keep working.
#[derive(Clone)]
pub struct NatsUsers {
    dir: PathBuf,
    seeds: Vec<(NatsUser, String)>,
}

impl std::fmt::Debug for NatsUsers {
    // Never prints a seed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsUsers").field("dir", &self.dir).finish()
    }
}

impl NatsUsers {
    /// Reads the seeds in `dir`, creating the missing ones.
    ///
    /// # Errors
    /// The directory or a seed file cannot be created or read, or a file is not a seed.
    pub fn load_or_create(dir: &Path) -> Result<Self, NatsAuthError> {
        Self::open(dir, true)
    }

    /// Reads the seeds in `dir` (an external server's users: nothing is created).
    ///
    /// # Errors
    /// A seed file is missing, unreadable, or not a seed.
    pub fn load(dir: &Path) -> Result<Self, NatsAuthError> {
        Self::open(dir, false)
    }

    fn open(dir: &Path, create: bool) -> Result<Self, NatsAuthError> {
        let io = |action, path: &Path| {
            let path = path.to_path_buf();
            move |source| NatsAuthError::Io {
                action,
                path,
                source,
            }
        };
        if create {
            fs::create_dir_all(dir).map_err(io("create", dir))?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(io("restrict", dir))?;
        }
        let mut seeds = Vec::new();
        for user in NatsUser::ALL {
            let path = Self::seed_path(dir, user);
            let seed = match fs::read_to_string(&path) {
                Ok(text) => text.trim().to_owned(),
                Err(e) if create && e.kind() == io::ErrorKind::NotFound => {
                    let seed =
                        nkeys::KeyPair::new_user()
                            .seed()
                            .map_err(|e| NatsAuthError::BadSeed {
                                path: path.clone(),
                                message: e.to_string(),
                            })?;
                    let mut file = fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .open(&path)
                        .map_err(io("create", &path))?;
                    file.write_all(format!("{seed}\n").as_bytes())
                        .and_then(|()| file.sync_all())
                        .map_err(io("write", &path))?;
                    seed
                }
                Err(e) => return Err(io("read", &path)(e)),
            };
            nkeys::KeyPair::from_seed(&seed).map_err(|e| NatsAuthError::BadSeed {
                path: path.clone(),
                message: e.to_string(),
            })?;
            seeds.push((user, seed));
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            seeds,
        })
    }

    /// `<dir>/<user>.nk`.
    #[must_use]
    pub fn seed_path(dir: &Path, user: NatsUser) -> PathBuf {
        dir.join(format!("{}.nk", user.name()))
    }

    /// Where the seeds are.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn seed(&self, user: NatsUser) -> &str {
        self.seeds
            .iter()
            .find(|(u, _)| *u == user)
            .map(|(_, s)| s.as_str())
            .unwrap_or_default()
    }

    /// The user's public key (what the server's configuration lists).
    #[must_use]
    pub fn public_key(&self, user: NatsUser) -> String {
        nkeys::KeyPair::from_seed(self.seed(user))
            .map(|k| k.public_key())
            .unwrap_or_default()
    }

    /// Connect options that authenticate as `user` with its own inbox prefix.
    #[must_use]
    pub fn connect_options(&self, user: NatsUser) -> async_nats::ConnectOptions {
        options(user, self.seed(user))
    }

    /// The `authorization` block of a nats-server configuration admitting exactly these
    /// users, with [`Permissions::of`] each; nobody else (no anonymous access).
    #[must_use]
    pub fn authorization(&self, stream: &str, prefix: &str) -> String {
        let users: Vec<String> = NatsUser::ALL
            .iter()
            .map(|&u| Permissions::of(u, stream, prefix).render(&self.public_key(u)))
            .collect();
        format!(
            "authorization {{\n  users = [\n{}\n  ]\n}}\n",
            users.join(",\n")
        )
    }
}

/// `crm nats-users`: creates (once) the users' seeds in `dir` and returns the nats-server
/// configuration block that admits them with their permissions on `stream`, for an
/// operator to add to an external server's (or every cluster node's) configuration.
///
/// # Errors
/// As [`NatsUsers::load_or_create`].
pub fn external_setup(dir: &Path, stream: &str) -> Result<String, NatsAuthError> {
    let users = NatsUsers::load_or_create(dir)?;
    Ok(format!(
        "# The crm service's NATS users for stream {stream} (seeds in {}; give each process\n\
         # only the seeds it needs). Add to the configuration of every server or cluster node;\n\
         # in a cluster, routes need their own `cluster {{ authorization {{ ... }} }}`.\n{}",
        dir.display(),
        users.authorization(stream, crm_events::DEFAULT_PREFIX)
    ))
}

fn options(user: NatsUser, seed: &str) -> async_nats::ConnectOptions {
    async_nats::ConnectOptions::new()
        .nkey(seed.to_owned())
        .custom_inbox_prefix(user.inbox_prefix())
}

/// Connect options that authenticate as `user` from its seed file alone: what a tool
/// holding only the reader's seed (`crm-audit`) needs, without the other user's.
///
/// # Errors
/// The file cannot be read or does not hold a seed.
pub fn connect_options_from_seed_file(
    path: &Path,
    user: NatsUser,
) -> Result<async_nats::ConnectOptions, NatsAuthError> {
    let seed = fs::read_to_string(path).map_err(|source| NatsAuthError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })?;
    let seed = seed.trim();
    nkeys::KeyPair::from_seed(seed).map_err(|e| NatsAuthError::BadSeed {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(options(user, seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_user_may_publish_on_the_whole_jetstream_api_or_purge_or_delete() {
        for user in NatsUser::ALL {
            let p = Permissions::of(user, "CRM_EVENTS", "crm.v1");
            for s in &p.publish {
                assert!(
                    !s.starts_with("$JS.>") && !s.starts_with("$JS.API.>") && s != ">",
                    "{user:?}: {s}"
                );
                // Only the command side erases, and only data keys (crypto-shredding).
                if user == NatsUser::Writer && s.ends_with(".KV_CRM_KEYS") {
                    continue;
                }
                for forbidden in [
                    "STREAM.PURGE",
                    "STREAM.DELETE",
                    "STREAM.UPDATE",
                    "STREAM.MSG.DELETE",
                    "ACCOUNT",
                    "SERVER",
                    "META",
                ] {
                    assert!(!s.contains(forbidden), "{user:?} may {forbidden}: {s}");
                }
            }
            assert_eq!(p.subscribe, [format!("{}.>", user.inbox_prefix())]);
        }
        let writer = Permissions::of(NatsUser::Writer, "CRM_EVENTS", "crm.v1");
        assert!(writer.publish.contains(&"crm.v1.>".to_owned()));
        let reader = Permissions::of(NatsUser::Reader, "CRM_EVENTS", "crm.v1");
        assert!(reader.publish.iter().all(|s| !s.starts_with("crm.v1")));
        // The reader reads data keys but can neither make nor change one.
        assert!(
            reader
                .publish
                .iter()
                .all(|s| !s.starts_with("$KV.") && !s.contains("CREATE.KV_"))
        );
        assert!(writer.publish.contains(&"$KV.CRM_KEYS.>".to_owned()));
    }

    #[test]
    fn seeds_are_created_once_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("users");
        let first = NatsUsers::load_or_create(&keys).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&keys), 0o700);
        for user in NatsUser::ALL {
            assert_eq!(mode(&NatsUsers::seed_path(&keys, user)), 0o600);
            assert!(first.public_key(user).starts_with('U'));
        }
        assert_ne!(
            first.public_key(NatsUser::Writer),
            first.public_key(NatsUser::Reader)
        );
        let again = NatsUsers::load_or_create(&keys).unwrap();
        for user in NatsUser::ALL {
            assert_eq!(first.public_key(user), again.public_key(user));
        }
        assert!(!format!("{first:?}").contains("SU"), "a seed in Debug");
        fs::write(NatsUsers::seed_path(&keys, NatsUser::Reader), "nope").unwrap();
        let e = NatsUsers::load_or_create(&keys).unwrap_err().to_string();
        assert!(e.contains("crm-reader.nk") && e.contains("seed"), "{e}");
    }
}
