//! Authentication (bearer tokens, stored hashed, compared in constant time),
//! authorization (roles grant permissions; every RPC requires one; the default is deny)
//! and attribution (the envelope's actor is the authenticated principal).

use std::collections::BTreeSet;
use std::path::Path;

use crm_domain::Actor;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a principal may do. Every RPC requires exactly one.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Permission {
    /// Register customers, change their profile, consent, tags and relationships.
    CustomersWrite,
    /// Log interactions (calls, emails, chats, ...).
    InteractionsWrite,
    /// Place orders and record returns.
    CommerceWrite,
    /// Open and work support tickets.
    TicketsWrite,
    /// Open and move opportunities.
    SalesWrite,
    /// Capture and work leads.
    LeadsWrite,
    /// Create and send campaigns, record costs and responses.
    MarketingWrite,
    /// Use the bulk ingest stream (each command in it also needs its own permission).
    Ingest,
    /// Read the customer read models (360 view, lists, timelines).
    CustomersRead,
    /// See personal data (names, emails, phones, addresses, external ids) in reads.
    PiiRead,
    /// See the projections a process hosts and their builds.
    ProjectionsRead,
    /// Start rebuilds of projections.
    ProjectionsAdmin,
    /// Quarantine a stream position that holds a message that is not ours.
    LogQuarantine,
    /// See the quarantined positions of the event log.
    LogAudit,
    /// Read the sales funnel and forecast (figures, no personal data).
    FunnelRead,
    /// Replay customers from the event stream: histories, as-of views, diffs
    /// (`AuditService`; personal data only with `pii.read`).
    AuditRead,
    /// Read the churn models, customers' churn risk and lifetime value (figures, no
    /// personal data) and fit models without serving them.
    ChurnRead,
    /// Choose the served churn model (`FitModel` with `serve = true`).
    ChurnAdmin,
    /// Forget a customer (right to be forgotten): their personal data is destroyed for
    /// good. Admin only.
    PrivacyForget,
    /// Export everything held about one customer, personal data included (subject
    /// access). Admins and auditors.
    PrivacyExport,
}

impl Permission {
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::CustomersWrite => "customers.write",
            Self::InteractionsWrite => "interactions.write",
            Self::CommerceWrite => "commerce.write",
            Self::TicketsWrite => "tickets.write",
            Self::SalesWrite => "sales.write",
            Self::LeadsWrite => "leads.write",
            Self::MarketingWrite => "marketing.write",
            Self::Ingest => "ingest",
            Self::CustomersRead => "customers.read",
            Self::PiiRead => "pii.read",
            Self::ProjectionsRead => "projections.read",
            Self::ProjectionsAdmin => "projections.admin",
            Self::LogQuarantine => "log.quarantine",
            Self::LogAudit => "log.audit",
            Self::FunnelRead => "funnel.read",
            Self::AuditRead => "audit.read",
            Self::ChurnRead => "churn.read",
            Self::ChurnAdmin => "churn.admin",
            Self::PrivacyForget => "privacy.forget",
            Self::PrivacyExport => "privacy.export",
        }
    }
}

/// Roles of principals. A role is a named set of permissions.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything.
    Admin,
    /// Sales reps: customers, interactions, leads, opportunities.
    Sales,
    /// Customer service agents: customers, interactions, tickets, returns.
    Service,
    /// Marketing: campaigns, leads, consent.
    Marketing,
    /// Auditors read and replay; they change nothing.
    Auditor,
    /// Analysts read, rebuild and export; they change nothing.
    Analyst,
    /// Import jobs: bulk ingest of every command, attributed as imports.
    Importer,
}

impl Role {
    #[must_use]
    pub fn permissions(self) -> &'static [Permission] {
        use Permission::{
            AuditRead, ChurnAdmin, ChurnRead, CommerceWrite, CustomersRead, CustomersWrite,
            FunnelRead, Ingest, InteractionsWrite, LeadsWrite, LogAudit, LogQuarantine,
            MarketingWrite, PiiRead, PrivacyExport, PrivacyForget, ProjectionsAdmin,
            ProjectionsRead, SalesWrite, TicketsWrite,
        };
        const ALL: &[Permission] = &[
            CustomersWrite,
            InteractionsWrite,
            CommerceWrite,
            TicketsWrite,
            SalesWrite,
            LeadsWrite,
            MarketingWrite,
            Ingest,
            CustomersRead,
            PiiRead,
            ProjectionsRead,
            ProjectionsAdmin,
            LogQuarantine,
            LogAudit,
            FunnelRead,
            AuditRead,
            ChurnRead,
            ChurnAdmin,
            PrivacyForget,
            PrivacyExport,
        ];
        const WRITE_ALL: &[Permission] = &[
            CustomersWrite,
            InteractionsWrite,
            CommerceWrite,
            TicketsWrite,
            SalesWrite,
            LeadsWrite,
            MarketingWrite,
            Ingest,
        ];
        match self {
            Self::Admin => ALL,
            // Imports write; they read nothing.
            Self::Importer => WRITE_ALL,
            Self::Sales => &[
                CustomersWrite,
                InteractionsWrite,
                LeadsWrite,
                SalesWrite,
                CustomersRead,
                PiiRead,
                FunnelRead,
                ChurnRead,
            ],
            Self::Service => &[
                CustomersWrite,
                InteractionsWrite,
                TicketsWrite,
                CommerceWrite,
                CustomersRead,
                PiiRead,
                ChurnRead,
            ],
            Self::Marketing => &[
                MarketingWrite,
                LeadsWrite,
                CustomersWrite,
                CustomersRead,
                PiiRead,
                FunnelRead,
                ChurnRead,
            ],
            // Auditors see everything as it was recorded; analysts see figures, not people.
            Self::Auditor => &[
                CustomersRead,
                PiiRead,
                ProjectionsRead,
                LogAudit,
                FunnelRead,
                AuditRead,
                ChurnRead,
                PrivacyExport,
            ],
            // Analysts replay histories too, without personal data.
            Self::Analyst => &[
                CustomersRead,
                ProjectionsRead,
                FunnelRead,
                AuditRead,
                ChurnRead,
            ],
        }
    }
}

/// How a principal's changes are attributed.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrincipalKind {
    User,
    Service,
    Automation,
}

/// An authenticated caller.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Principal {
    pub name: String,
    pub kind: PrincipalKind,
    pub roles: BTreeSet<Role>,
}

impl Principal {
    #[must_use]
    pub fn allows(&self, permission: Permission) -> bool {
        self.roles
            .iter()
            .any(|r| r.permissions().contains(&permission))
    }

    /// `Ok` if one of the principal's roles grants `permission`; otherwise the denial for
    /// `action`, naming the permission and the roles.
    pub fn require(&self, permission: Permission, action: &'static str) -> Result<(), AuthError> {
        if self.allows(permission) {
            Ok(())
        } else {
            Err(self.denied(action, permission.name()))
        }
    }

    /// The denial of `action`, which needs `permission` (a permission's name).
    #[must_use]
    pub fn denied(&self, action: &'static str, permission: &'static str) -> AuthError {
        AuthError::Denied {
            principal: self.name.clone(),
            action,
            permission,
            roles: self
                .roles
                .iter()
                .map(|r| format!("{r:?}").to_lowercase())
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    /// The actor recorded on events: imports are attributed as imports.
    #[must_use]
    pub fn actor(&self, import: bool) -> Actor {
        if import || self.roles.contains(&Role::Importer) {
            return Actor::Import(self.name.clone());
        }
        match self.kind {
            PrincipalKind::User => Actor::User(self.name.clone()),
            PrincipalKind::Service => Actor::Service(self.name.clone()),
            PrincipalKind::Automation => Actor::Automation(self.name.clone()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing credentials: send `authorization: Bearer <token>`")]
    Missing,
    #[error("malformed authorization header: expected `Bearer <token>`")]
    Malformed,
    #[error("unknown or revoked token")]
    Unknown,
    #[error(
        "{principal} may not {action}: it needs permission {permission}, which none of its roles ({roles}) grants"
    )]
    Denied {
        principal: String,
        action: &'static str,
        permission: &'static str,
        roles: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("cannot read tokens file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("tokens file {path} is invalid: {message}")]
    Invalid { path: String, message: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    #[serde(default)]
    principal: Vec<PrincipalEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PrincipalEntry {
    name: String,
    kind: PrincipalKind,
    roles: Vec<Role>,
    /// Hex SHA-256 of the bearer token (the token itself is never stored).
    token_sha256: String,
}

#[derive(Clone, Debug)]
struct Credential {
    hash: [u8; 32],
    principal: Principal,
}

/// The known credentials.
#[derive(Clone, Debug, Default)]
pub struct Authenticator {
    credentials: Vec<Credential>,
}

/// SHA-256 of a token, as stored in the tokens file.
#[must_use]
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Authenticator {
    /// Parses a tokens file:
    ///
    /// ```toml
    /// [[principal]]
    /// name = "shop-backend"
    /// kind = "service"            # user | service | automation
    /// roles = ["sales", "service"]
    /// token_sha256 = "<64 hex digits>"
    /// ```
    pub fn from_toml(text: &str, path: &str) -> Result<Self, TokenFileError> {
        let invalid = |message: String| TokenFileError::Invalid {
            path: path.to_owned(),
            message,
        };
        let file: TokenFile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let mut auth = Self::default();
        for (i, p) in file.principal.into_iter().enumerate() {
            let mut hash = [0u8; 32];
            hex::decode_to_slice(&p.token_sha256, &mut hash).map_err(|_| {
                invalid(format!(
                    "principal[{i}] ({}): token_sha256 must be 64 hex digits",
                    p.name
                ))
            })?;
            if p.name.trim().is_empty() {
                return Err(invalid(format!("principal[{i}]: name is required")));
            }
            if auth.credentials.iter().any(|c| c.principal.name == p.name) {
                return Err(invalid(format!("principal {} is listed twice", p.name)));
            }
            // One token, one principal: a shared token would make the actor ambiguous.
            if let Some(other) = auth.credentials.iter().find(|c| c.hash == hash) {
                return Err(invalid(format!(
                    "principal[{i}] ({}) has the same token_sha256 as principal {}: every principal needs its own token",
                    p.name, other.principal.name
                )));
            }
            auth.add(
                hash,
                Principal {
                    name: p.name,
                    kind: p.kind,
                    roles: p.roles.into_iter().collect(),
                },
            );
        }
        Ok(auth)
    }

    pub fn from_file(path: &Path) -> Result<Self, TokenFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenFileError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Adds a credential by the hash of its token.
    pub fn add(&mut self, hash: [u8; 32], principal: Principal) {
        self.credentials.push(Credential { hash, principal });
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.credentials.is_empty()
    }

    /// Authenticates the value of an `authorization` header.
    pub fn authenticate(&self, header: Option<&str>) -> Result<&Principal, AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Malformed)?;
        let presented = token_hash(token);
        // Compare against every credential in constant time, without stopping early.
        let mut found = None;
        for c in &self.credentials {
            if bool::from(c.hash.ct_eq(&presented)) {
                found = Some(&c.principal);
            }
        }
        found.ok_or(AuthError::Unknown)
    }

    /// Authenticates and checks `permission`.
    pub fn authorize(
        &self,
        header: Option<&str>,
        permission: Permission,
        action: &'static str,
    ) -> Result<&Principal, AuthError> {
        let principal = self.authenticate(header)?;
        principal.require(permission, action)?;
        Ok(principal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(token: &str, roles: &str) -> String {
        format!(
            "[[principal]]\nname = \"alice\"\nkind = \"user\"\nroles = [{roles}]\ntoken_sha256 = \"{}\"\n",
            hex::encode(token_hash(token))
        )
    }

    #[test]
    fn a_known_token_authenticates_its_principal() {
        let auth = Authenticator::from_toml(&file("s3cret", "\"sales\""), "t.toml").unwrap();
        let p = auth.authenticate(Some("Bearer s3cret")).unwrap();
        assert_eq!(p.name, "alice");
        assert_eq!(p.actor(false), Actor::User("alice".into()));
        assert_eq!(p.actor(true), Actor::Import("alice".into()));
    }

    #[test]
    fn missing_malformed_and_unknown_tokens_are_refused() {
        let auth = Authenticator::from_toml(&file("s3cret", "\"sales\""), "t.toml").unwrap();
        assert!(matches!(auth.authenticate(None), Err(AuthError::Missing)));
        assert!(matches!(
            auth.authenticate(Some("Basic abc")),
            Err(AuthError::Malformed)
        ));
        assert!(matches!(
            auth.authenticate(Some("Bearer ")),
            Err(AuthError::Malformed)
        ));
        assert!(matches!(
            auth.authenticate(Some("Bearer s3cre")),
            Err(AuthError::Unknown)
        ));
    }

    #[test]
    fn permissions_follow_roles_and_default_to_deny() {
        let auth = Authenticator::from_toml(&file("t", "\"auditor\""), "t.toml").unwrap();
        let err = auth
            .authorize(
                Some("Bearer t"),
                Permission::CustomersWrite,
                "register customers",
            )
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("customers.write") && text.contains("auditor"),
            "{text}"
        );
        let sales = Authenticator::from_toml(&file("t", "\"sales\""), "t.toml").unwrap();
        assert!(
            sales
                .authorize(Some("Bearer t"), Permission::SalesWrite, "x")
                .is_ok()
        );
        assert!(
            sales
                .authorize(Some("Bearer t"), Permission::TicketsWrite, "x")
                .is_err()
        );
        assert!(
            sales
                .authorize(Some("Bearer t"), Permission::Ingest, "x")
                .is_err()
        );
    }

    #[test]
    fn importer_changes_are_attributed_as_imports() {
        let auth = Authenticator::from_toml(&file("t", "\"importer\""), "t.toml").unwrap();
        let p = auth.authenticate(Some("Bearer t")).unwrap();
        assert_eq!(p.actor(false), Actor::Import("alice".into()));
    }

    #[test]
    fn invalid_token_files_name_the_problem() {
        let bad_hash =
            "[[principal]]\nname = \"a\"\nkind = \"user\"\nroles = []\ntoken_sha256 = \"xyz\"\n";
        let e = Authenticator::from_toml(bad_hash, "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("64 hex digits"), "{e}");
        let bad_role = file("t", "\"king\"");
        let e = Authenticator::from_toml(&bad_role, "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("king"), "{e}");
        let unknown_key = format!("{}extra = 1\n", file("t", "\"sales\""));
        let e = Authenticator::from_toml(&unknown_key, "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("extra"), "{e}");
    }

    #[test]
    fn two_principals_with_one_token_or_one_name_are_refused() {
        let entry = |name: &str, token: &str| {
            format!(
                "[[principal]]\nname = \"{name}\"\nkind = \"user\"\nroles = [\"sales\"]\ntoken_sha256 = \"{}\"\n",
                hex::encode(token_hash(token))
            )
        };
        let shared = format!("{}{}", entry("ann", "t1"), entry("bob", "t1"));
        let e = Authenticator::from_toml(&shared, "t.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("bob") && e.contains("same token_sha256") && e.contains("ann"),
            "{e}"
        );
        let twice = format!("{}{}", entry("ann", "t1"), entry("ann", "t2"));
        let e = Authenticator::from_toml(&twice, "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("ann is listed twice"), "{e}");
        let distinct = format!("{}{}", entry("ann", "t1"), entry("bob", "t2"));
        assert!(Authenticator::from_toml(&distinct, "t.toml").is_ok());
    }
}
