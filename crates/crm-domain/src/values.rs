//! Identifiers and value types shared by every aggregate.

use std::fmt;

use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh, time-ordered (UUIDv7) identifier.
            #[must_use]
            pub fn new_v7() -> Self {
                Self(Uuid::now_v7())
            }
            #[must_use]
            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }
            #[must_use]
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }
    };
}

id_type!(
    /// A customer aggregate.
    CustomerId
);
id_type!(
    /// A lead aggregate.
    LeadId
);
id_type!(
    /// A campaign aggregate.
    CampaignId
);
id_type!(
    /// An order inside a customer aggregate.
    OrderId
);
id_type!(
    /// A return (refund) of an order.
    ReturnId
);
id_type!(
    /// A support ticket inside a customer aggregate.
    TicketId
);
id_type!(
    /// A sales opportunity inside a customer aggregate.
    OpportunityId
);
id_type!(
    /// One logged interaction (call, email, chat, ...).
    InteractionId
);
id_type!(
    /// The client-supplied (or generated) identity of one command: the idempotency key.
    CommandId
);

impl CommandId {
    /// Derives a stable id for something a command creates (`purpose` tells the
    /// created things apart), so a retry of the same command creates the same ids.
    #[must_use]
    pub fn derive(&self, purpose: &str) -> Uuid {
        Uuid::new_v5(&self.0, purpose.as_bytes())
    }
}

/// Business time: microseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const MICROS_PER_SECOND: i64 = 1_000_000;
    pub const MICROS_PER_MINUTE: i64 = 60 * Self::MICROS_PER_SECOND;
    pub const MICROS_PER_DAY: i64 = 24 * 60 * Self::MICROS_PER_MINUTE;

    #[must_use]
    pub const fn from_micros(micros: i64) -> Self {
        Self(micros)
    }
    #[must_use]
    pub const fn as_micros(self) -> i64 {
        self.0
    }
    #[must_use]
    pub const fn plus_minutes(self, minutes: u32) -> Self {
        Self(
            self.0
                .saturating_add(minutes as i64 * Self::MICROS_PER_MINUTE),
        )
    }
}

/// A three-letter ISO 4217 currency code (upper case ASCII).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

impl Currency {
    /// Parses an upper-case three-letter code.
    pub fn parse(code: &str) -> Option<Self> {
        let bytes = code.as_bytes();
        if bytes.len() == 3 && bytes.iter().all(u8::is_ascii_uppercase) {
            Some(Self([bytes[0], bytes[1], bytes[2]]))
        } else {
            None
        }
    }
    #[must_use]
    pub fn as_str(&self) -> &str {
        // Constructed only from ASCII upper-case letters.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An amount in minor units (cents) of a currency.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Money {
    pub minor: i64,
    pub currency: Currency,
}

impl Money {
    #[must_use]
    pub const fn new(minor: i64, currency: Currency) -> Self {
        Self { minor, currency }
    }
}

/// Who or what caused a change. Set by the command handler from the authenticated
/// principal, never by the client.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Actor {
    /// A person using a CRM front end.
    User(String),
    /// A service calling the API with its own credentials.
    Service(String),
    /// A bulk import; the string names the import job or principal.
    Import(String),
    /// A rule or workflow acting on its own.
    Automation(String),
    /// The CRM itself (migrations, maintenance).
    System,
}

impl Actor {
    /// `user:alice`, `service:billing`, `import:crm-import`, `automation:rule-7`, `system`:
    /// how replies and read models name an actor.
    #[must_use]
    pub fn label(&self) -> String {
        match self {
            Self::User(n) => format!("user:{n}"),
            Self::Service(n) => format!("service:{n}"),
            Self::Import(n) => format!("import:{n}"),
            Self::Automation(n) => format!("automation:{n}"),
            Self::System => "system".into(),
        }
    }
}

/// Channels through which a customer can be reached or interacts.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum Channel {
    Email,
    Sms,
    Phone,
    Chat,
    Social,
    WebForm,
    Meeting,
    InPerson,
    Push,
    Post,
}

impl Channel {
    /// The name replies and read models use (`email`, `web_form`, ...).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Sms => "sms",
            Self::Phone => "phone",
            Self::Chat => "chat",
            Self::Social => "social",
            Self::WebForm => "web_form",
            Self::Meeting => "meeting",
            Self::InPerson => "in_person",
            Self::Push => "push",
            Self::Post => "post",
        }
    }
}

/// Channels that carry marketing consent.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum ConsentChannel {
    Email,
    Sms,
    Phone,
    Social,
    Push,
    Post,
}

impl ConsentChannel {
    /// The consent a campaign on `channel` needs, if any.
    #[must_use]
    pub const fn for_channel(channel: Channel) -> Option<Self> {
        match channel {
            Channel::Email => Some(Self::Email),
            Channel::Sms => Some(Self::Sms),
            Channel::Phone => Some(Self::Phone),
            Channel::Social => Some(Self::Social),
            Channel::Push => Some(Self::Push),
            Channel::Post => Some(Self::Post),
            Channel::Chat | Channel::WebForm | Channel::Meeting | Channel::InPerson => None,
        }
    }
}

/// A postal address.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Address {
    pub line1: String,
    pub line2: String,
    pub city: String,
    pub region: String,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
}

/// How a customer was acquired.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Acquisition {
    pub source: String,
    pub medium: String,
    pub campaign: Option<CampaignId>,
}
