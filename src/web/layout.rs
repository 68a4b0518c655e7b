//! The shared page frame (templates/base.html): title, navigation, sign-out form, live indicator.

use askama::Template;
use axum::response::{Html, IntoResponse, Response};
use tower_sessions::Session;

use super::csrf;
use super::error::PageError;
use crate::domain::{Role, TemperatureUnit, User};

pub struct NavUser {
    /// Tabs of one user share one stream (static/js/tabs.js), found by `<body data-user>`.
    pub id: i64,
    pub email: String,
    pub role: &'static str,
    pub home: &'static str,
    pub home_label: &'static str,
}

pub struct Layout {
    pub title: String,
    pub user: Option<NavUser>,
    /// Anti-forgery token for the forms of the page (sign-out included).
    pub csrf: String,
    /// Set on live pages: the event id the page was rendered at, where the stream starts.
    pub live_from: Option<i64>,
    pub asset: &'static str,
    /// The reader's temperature unit (°C for a page without a user); the page script reads it
    /// from `<body data-unit>`.
    pub unit: TemperatureUnit,
}

pub fn dashboard_path(role: Role) -> &'static str {
    match role {
        Role::Admin => "/admin",
        Role::Manager => "/manager",
        Role::Employee => "/employee",
    }
}

impl Layout {
    /// For templates (askama hands fields over by reference).
    pub fn unit(&self) -> TemperatureUnit {
        self.unit
    }

    /// For pages without a signed-in frame (errors).
    pub fn bare(title: &str) -> Layout {
        Layout {
            title: title.to_string(),
            user: None,
            csrf: String::new(),
            live_from: None,
            asset: super::asset_version(),
            unit: TemperatureUnit::Celsius,
        }
    }

    /// For a page whose forms carry `csrf` (the sign-in form).
    pub fn with_csrf(title: &str, csrf: String) -> Layout {
        Layout {
            csrf,
            ..Layout::bare(title)
        }
    }

    pub async fn page(session: &Session, title: &str) -> Result<Layout, PageError> {
        Ok(Layout {
            csrf: csrf::token(session).await?,
            ..Layout::bare(title)
        })
    }

    pub async fn signed_in(
        user: &User,
        session: &Session,
        title: &str,
    ) -> Result<Layout, PageError> {
        let mut layout = Layout::page(session, title).await?;
        layout.unit = user.unit;
        layout.user = Some(NavUser {
            id: user.id,
            email: user.email.clone(),
            role: user.role.as_str(),
            home: dashboard_path(user.role),
            home_label: match user.role {
                Role::Admin => "Fleet",
                Role::Manager => "My sites",
                Role::Employee => "Devices",
            },
        });
        Ok(layout)
    }

    /// The signed-in user's dashboard.
    pub fn home(&self) -> &'static str {
        self.user.as_ref().map_or("/", |u| u.home)
    }

    pub fn live(mut self, last_event_id: i64) -> Layout {
        self.live_from = Some(last_event_id);
        self
    }
}

/// Renders a page template, or a friendly error page if rendering fails.
pub fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => PageError::internal(e).into_response(),
    }
}

/// An error page a person can act on (the error type itself is `error.rs`; its page lives here
/// with the layout it is drawn in).
#[derive(askama::Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    layout: Layout,
    message: &'a str,
    status: u16,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let page = ErrorPage {
            layout: Layout::bare(self.title),
            message: &self.message,
            status: self.status.as_u16(),
        };
        match page.render() {
            Ok(html) => (self.status, axum::response::Html(html)).into_response(),
            Err(e) => {
                tracing::error!(error = %e, "error page did not render");
                (self.status, self.message).into_response()
            }
        }
    }
}
