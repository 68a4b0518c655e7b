//! Alarm emails over SMTP (lettre): plain text and HTML, STARTTLS or implicit TLS as the URL says.

use std::time::Duration;

use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{render, Failure};
use crate::domain::{NotificationRow, TemperatureUnit};

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    pub fn new(url: &str, from: &str, timeout: Duration) -> anyhow::Result<Mailer> {
        // lettre's pool (its defaults: up to 10 connections, closed after 60 s idle) reuses
        // connections: a burst of alarm emails otherwise costs a TCP connect, EHLO and QUIT
        // each, on our CPU and the mail server's (bench/README.md, 2026-12-04).
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| anyhow::anyhow!("--smtp-url: {e}"))?
            .timeout(Some(timeout))
            .build();
        let from = from
            .parse()
            .map_err(|e| anyhow::anyhow!("--smtp-from {from:?}: {e}"))?;
        Ok(Mailer { transport, from })
    }

    /// Sends the email of `row`, temperatures in the recipient's `unit`.
    pub async fn send(
        &self,
        row: &NotificationRow,
        public_url: &str,
        unit: TemperatureUnit,
    ) -> Result<String, Failure> {
        let to: Mailbox = row
            .recipient
            .parse()
            .map_err(|e| Failure::permanent(format!("bad address {:?}: {e}", row.recipient)))?;
        let mail = render::email(&row.payload, public_url, unit);
        let body = MultiPart::alternative()
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(mail.text),
            )
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_HTML)
                    .body(mail.html),
            );
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject)
            .message_id(Some(format!("<{}@sensorcast>", row.delivery_id)))
            .multipart(body)
            .map_err(|e| Failure::permanent(format!("could not build the message: {e}")))?;
        match self.transport.send(message).await {
            Ok(answer) => Ok(format!(
                "250 {}",
                answer.message().collect::<Vec<_>>().join(" ")
            )),
            Err(e) if e.is_permanent() => Err(Failure::permanent(format!("refused: {e}"))),
            Err(e) => Err(Failure::retry(format!("not sent: {e}"))),
        }
    }
}
