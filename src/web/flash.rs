//! One-time messages (flash) a page shows after a form redirects back to it: kept in the
//! session by the form's handler, taken (and so removed) by the page it redirects to. Used by
//! the admin forms, the alarm and rule forms, and the pages that show their outcome.

use serde::{Deserialize, Serialize};
use tower_sessions::Session;

const FLASH_KEY: &str = "flash";

/// A one-time message shown after a form redirects back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Flash {
    pub ok: bool,
    pub text: String,
}

pub async fn set_flash(session: &Session, ok: bool, text: impl Into<String>) {
    let flash = Flash {
        ok,
        text: text.into(),
    };
    if let Err(e) = session.insert(FLASH_KEY, flash).await {
        tracing::warn!(error = %e, "could not keep the flash message");
    }
}

pub async fn take_flash(session: &Session) -> Option<Flash> {
    session.remove::<Flash>(FLASH_KEY).await.ok().flatten()
}
