//! Creating an account, the same way from the admin page, the command line, start-up and the
//! demo: check the password, hash it (on the bounded hashing threads), store the user.

use super::password;
use crate::domain::{check_new_password, Role};
use crate::store::{NewUser, Store, StoreError, StoreResult};

/// `Invalid` with a sentence for a bad email or password; `Conflict` if the email is taken.
pub async fn create(
    store: &Store,
    email: &str,
    pw: &str,
    role: Role,
    sites: &[String],
    by: &str,
) -> StoreResult<i64> {
    check_new_password(pw).map_err(|why| StoreError::Invalid(why.into()))?;
    let hash = password::hash(pw.to_string())
        .await
        .map_err(|e| StoreError::Failed(e.into()))?;
    let user = NewUser {
        email,
        password_hash: &hash,
        role,
        sites,
        by,
    };
    store.create_user(user).await
}
