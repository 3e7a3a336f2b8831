//! E-mail over SMTP through `lettre` (`STREAMGUARD_ALERT_SMTP_*`): one plain-text mail
//! per message, subject the message's title, to every configured recipient.

use std::time::Duration;

use async_trait::async_trait;
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::{Channel, Message, SendError};

/// The channel's name.
pub const NAME: &str = "email";

/// How the SMTP connection is secured (`STREAMGUARD_ALERT_SMTP_TLS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (port 587). The default.
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption at all: only for a relay on the same host or a test sink.
    None,
}

impl SmtpTls {
    /// The default: STARTTLS.
    pub const DEFAULT: Self = Self::StartTls;
}

impl Default for SmtpTls {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl std::fmt::Display for SmtpTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::StartTls => "starttls",
            Self::Tls => "tls",
            Self::None => "none",
        })
    }
}

impl std::str::FromStr for SmtpTls {
    /// The accepted words.
    type Err = String;

    /// `starttls`, `tls` or `none`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "starttls" => Ok(Self::StartTls),
            "tls" => Ok(Self::Tls),
            "none" => Ok(Self::None),
            _ => Err("`starttls`, `tls` or `none`".into()),
        }
    }
}

/// The SMTP port unless set (`STREAMGUARD_ALERT_SMTP_PORT`): submission with STARTTLS.
pub const DEFAULT_PORT: u16 = 587;
/// The sender unless set (`STREAMGUARD_ALERT_SMTP_FROM`).
pub const DEFAULT_FROM: &str = "streamguard@localhost";

/// SMTP settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SmtpSettings {
    /// Server host name (`STREAMGUARD_ALERT_SMTP_HOST`).
    pub host: String,
    /// Port (`STREAMGUARD_ALERT_SMTP_PORT`; default 587).
    pub port: u16,
    /// Connection security.
    pub tls: SmtpTls,
    /// User name and password (`STREAMGUARD_ALERT_SMTP_USERNAME`, `_PASSWORD`), if any.
    pub credentials: Option<(String, String)>,
    /// Sender address (`STREAMGUARD_ALERT_SMTP_FROM`).
    pub from: String,
    /// Recipients, comma-separated (`STREAMGUARD_ALERT_SMTP_TO`).
    pub to: Vec<String>,
}

/// The e-mail channel.
#[derive(Clone)]
pub struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl std::fmt::Debug for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Email")
            .field("from", &self.from)
            .field("to", &self.to)
            .finish_non_exhaustive()
    }
}

impl Email {
    /// Builds the transport (no connection is made until the first send).
    ///
    /// # Errors
    /// A message naming the setting when an address or the TLS set-up is invalid.
    pub fn new(s: &SmtpSettings) -> Result<Self, String> {
        let builder = match s.tls {
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host),
            SmtpTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&s.host)
                .map_err(|e| format!("STREAMGUARD_ALERT_SMTP_HOST {:?}: {e}", s.host))?,
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&s.host)
                .map_err(|e| format!("STREAMGUARD_ALERT_SMTP_HOST {:?}: {e}", s.host))?,
        };
        let mut builder = builder.port(s.port).timeout(Some(Duration::from_secs(10)));
        if let Some((user, password)) = &s.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        let from = s
            .from
            .parse()
            .map_err(|e| format!("STREAMGUARD_ALERT_SMTP_FROM {:?}: {e}", s.from))?;
        let to =
            s.to.iter()
                .map(|a| {
                    a.parse()
                        .map_err(|e| format!("STREAMGUARD_ALERT_SMTP_TO {a:?}: {e}"))
                })
                .collect::<Result<Vec<Mailbox>, _>>()?;
        if to.is_empty() {
            return Err("STREAMGUARD_ALERT_SMTP_TO needs at least one address".into());
        }
        Ok(Self {
            transport: builder.build(),
            from,
            to,
        })
    }
}

#[async_trait]
impl Channel for Email {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn send(&self, m: &Message) -> Result<(), SendError> {
        let mut builder = lettre::Message::builder()
            .from(self.from.clone())
            .subject(m.title.clone())
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        let body = format!(
            "{}\n\n{} event(s), scope {}, first at {}.\nmessage id {}\n",
            m.text(),
            m.count,
            m.scope,
            m.first_at.to_rfc3339(),
            m.message_id
        );
        let mail = builder
            .body(body)
            .map_err(|e| SendError(format!("building the e-mail: {e}")))?;
        self.transport
            .send(mail)
            .await
            .map(drop)
            .map_err(|e| SendError(format!("SMTP: {e}")))
    }
}
