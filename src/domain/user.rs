//! Who is signed in, their role, and which devices they may see.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Manager,
    Employee,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Manager => "manager",
            Role::Employee => "employee",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "manager" => Some(Role::Manager),
            "employee" => Some(Role::Employee),
            _ => None,
        }
    }
}

/// A signed-in user as the web layer sees them.
#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub role: Role,
    pub disabled: bool,
    pub site_ids: Vec<i64>,
    /// The unit pages, reports and emails show temperatures in.
    pub unit: super::TemperatureUnit,
}

impl User {
    pub fn scope(&self) -> Scope {
        match self.role {
            Role::Admin => Scope::All,
            _ => Scope::Sites(self.site_ids.clone()),
        }
    }
}

/// Which devices a reader may see.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    All,
    Sites(Vec<i64>),
}

impl Scope {
    pub fn allows(&self, site_id: Option<i64>) -> bool {
        match self {
            Scope::All => true,
            Scope::Sites(sites) => site_id.is_some_and(|s| sites.contains(&s)),
        }
    }
}

/// Shortest password accepted for an account.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// Why a new password is refused, in words for the person choosing it.
pub fn check_new_password(password: &str) -> Result<(), &'static str> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err("The password needs at least 8 characters.");
    }
    Ok(())
}
