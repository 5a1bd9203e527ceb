//! The users file: who may log in, in which role and scope.
//!
//! A TOML file of `[[user]]` tables, managed by `epitrace users
//! add|disable|list` (and `POST /v1/users/{name}/disable`), read by the
//! server (again whenever it changes on disk, so a disabled user's session
//! ends at their next request):
//!
//! ```toml
//! [[user]]
//! name = "inv-kim"                  # [A-Za-z0-9._:-], at most 128 bytes
//! role = "investigator"             # investigator | epidemiologist | approver | auditor | admin
//! regions = ["seoul"]               # investigators: the regions whose cases they see ("*": all)
//! password_hash = "$argon2id$v=19$m=19456,t=2,p=1$…"
//! disabled = false
//!
//! [[user]]
//! name = "police-park"
//! role = "approver"
//! authority = "seoul-police"        # approvers: who approves …
//! category = "LOCATION"             # … and the one category they may approve
//! password_hash = "…"
//! ```
//!
//! Passwords are hashed with argon2id (the `argon2` crate's defaults:
//! 19 MiB, 2 passes, a random 16-byte salt) and never stored or logged. The
//! file is written atomically (a temporary file renamed over it) with mode
//! 0600.

use std::path::Path;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use epitrace_core::approval::Category;
use epitrace_model::{ActorId, Text};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::policy::ApiRole;

/// Shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// One user.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// Login name.
    pub name: String,
    /// Role.
    pub role: ApiRole,
    /// Investigators: the regions whose cases they see; `"*"` for all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<String>,
    /// Approvers: the authority they approve for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    /// Approvers: the one category they may approve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<Category>,
    /// The argon2id hash (PHC string) of the password.
    pub password_hash: String,
    /// A disabled user cannot log in, and their tokens stop working.
    #[serde(default)]
    pub disabled: bool,
}

impl User {
    /// Whether an investigator with this user's regions sees a case of
    /// `region` (`None`: a case without a region, seen by `"*"` only).
    #[must_use]
    pub fn sees_region(&self, region: Option<&str>) -> bool {
        self.regions
            .iter()
            .any(|r| r == "*" || region.is_some_and(|c| c == r))
    }

    fn check(&self) -> Result<(), String> {
        ActorId::new(self.name.as_str())
            .map_err(|_| "a user name is 1 to 128 characters of A-Z a-z 0-9 . _ : -".to_owned())?;
        match self.role {
            ApiRole::Investigator if self.regions.is_empty() => {
                return Err(format!(
                    "investigator {} needs at least one region (\"*\" for all)",
                    self.name
                ));
            }
            ApiRole::Approver if self.authority.is_none() || self.category.is_none() => {
                return Err(format!(
                    "approver {} needs an authority and a category",
                    self.name
                ));
            }
            _ => {}
        }
        for r in &self.regions {
            if r != "*" {
                Text::new("region", r.as_str())
                    .map_err(|_| format!("user {}: a region must be printable text", self.name))?;
            }
        }
        if let Some(a) = &self.authority {
            ActorId::new(a.as_str()).map_err(|_| {
                format!(
                    "user {}: an authority is an identifier (A-Z a-z 0-9 . _ : -)",
                    self.name
                )
            })?;
        }
        PasswordHash::new(&self.password_hash)
            .map_err(|_| format!("user {}: password_hash is not a PHC string", self.name))?;
        Ok(())
    }

    /// Whether `password` is this user's.
    #[must_use]
    pub fn password_matches(&self, password: &str) -> bool {
        PasswordHash::new(&self.password_hash).is_ok_and(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
    }
}

/// A user to add: everything but the hash.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NewUser {
    /// Login name.
    pub name: String,
    /// Role.
    pub role: ApiRole,
    /// Investigators' regions.
    pub regions: Vec<String>,
    /// Approvers' authority.
    pub authority: Option<String>,
    /// Approvers' category.
    pub category: Option<Category>,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    #[serde(default)]
    user: Vec<User>,
}

/// The users of a users file.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Users {
    users: Vec<User>,
}

impl Users {
    /// Reads and checks a users file; a missing file has no users.
    ///
    /// # Errors
    /// [`ApiError::UsersFile`] when it cannot be read or parsed, or a user
    /// is invalid (duplicate name, investigator without region, approver
    /// without authority or category, a malformed hash).
    pub fn load(path: &Path) -> Result<Self, ApiError> {
        let err = |reason: String| ApiError::UsersFile {
            path: path.to_owned(),
            reason,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(err(e.to_string())),
        };
        let doc: Doc = toml::from_str(&text).map_err(|e| err(e.message().to_owned()))?;
        for (i, u) in doc.user.iter().enumerate() {
            u.check().map_err(&err)?;
            if doc.user[..i].iter().any(|v| v.name == u.name) {
                return Err(err(format!("user {} is listed twice", u.name)));
            }
        }
        Ok(Self { users: doc.user })
    }

    /// Writes the file atomically with mode 0600.
    ///
    /// # Errors
    /// [`ApiError::UsersFile`] when it cannot be written.
    pub fn save(&self, path: &Path) -> Result<(), ApiError> {
        let err = |reason: String| ApiError::UsersFile {
            path: path.to_owned(),
            reason,
        };
        let text = toml::to_string(&Doc {
            user: self.users.clone(),
        })
        .map_err(|e| err(e.to_string()))?;
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| Path::new("."));
        let tmp = dir.join(format!(
            ".{}.tmp",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("users")
        ));
        {
            use std::io::Write;
            #[cfg(unix)]
            use std::os::unix::fs::OpenOptionsExt;
            let mut o = std::fs::OpenOptions::new();
            o.write(true).create(true).truncate(true);
            #[cfg(unix)]
            o.mode(0o600);
            let mut f = o.open(&tmp).map_err(|e| err(e.to_string()))?;
            f.write_all(text.as_bytes())
                .map_err(|e| err(e.to_string()))?;
            f.sync_all().map_err(|e| err(e.to_string()))?;
        }
        std::fs::rename(&tmp, path).map_err(|e| err(e.to_string()))
    }

    /// Every user, in file order.
    #[must_use]
    pub fn all(&self) -> &[User] {
        &self.users
    }

    /// The user called `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }

    /// Adds a user with `password` hashed.
    ///
    /// # Errors
    /// [`ApiError::User`] for a taken name, a password shorter than
    /// [`MIN_PASSWORD_CHARS`], or a user missing its scope.
    pub fn add(&mut self, new: NewUser, password: &str) -> Result<&User, ApiError> {
        if self.get(&new.name).is_some() {
            return Err(ApiError::User(format!("user {} exists already", new.name)));
        }
        if password.chars().count() < MIN_PASSWORD_CHARS {
            return Err(ApiError::User(format!(
                "a password needs at least {MIN_PASSWORD_CHARS} characters"
            )));
        }
        let user = User {
            password_hash: hash_password(password)?,
            name: new.name,
            role: new.role,
            regions: new.regions,
            authority: new.authority,
            category: new.category,
            disabled: false,
        };
        user.check().map_err(ApiError::User)?;
        self.users.push(user);
        let last = self.users.len() - 1;
        Ok(&self.users[last])
    }

    /// Disables `name`; returns whether it was enabled before.
    ///
    /// # Errors
    /// [`ApiError::User`] for an unknown name.
    pub fn disable(&mut self, name: &str) -> Result<bool, ApiError> {
        let u = self
            .users
            .iter_mut()
            .find(|u| u.name == name)
            .ok_or_else(|| ApiError::User(format!("no user {name}")))?;
        let was = !u.disabled;
        u.disabled = true;
        Ok(was)
    }
}

/// The argon2id PHC string of `password`, with a random salt.
///
/// # Errors
/// [`ApiError::User`] when hashing fails.
pub fn hash_password(password: &str) -> Result<String, ApiError> {
    let mut salt = [0u8; 16];
    openssl::rand::rand_bytes(&mut salt).map_err(|e| ApiError::Tls(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| ApiError::User(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ApiError::User(e.to_string()))
}

/// A hash to verify against when a login names no user, so that the
/// answer takes as long as for a real user.
///
/// # Errors
/// As [`hash_password`].
pub fn decoy_hash() -> Result<String, ApiError> {
    hash_password("decoy password that nobody has")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn inv(name: &str) -> NewUser {
        NewUser {
            name: name.into(),
            role: ApiRole::Investigator,
            regions: vec!["seoul".into()],
            authority: None,
            category: None,
        }
    }

    #[test]
    fn added_users_round_trip_and_passwords_verify() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        let mut users = Users::load(&path).unwrap();
        assert!(users.all().is_empty());
        users.add(inv("inv-kim"), "correct horse battery").unwrap();
        users
            .add(
                NewUser {
                    name: "police-park".into(),
                    role: ApiRole::Approver,
                    regions: vec![],
                    authority: Some("seoul-police".into()),
                    category: Some(Category::Location),
                },
                "another long password",
            )
            .unwrap();
        users.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("correct horse"), "no password at rest");
        assert!(text.contains("$argon2id$"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let back = Users::load(&path).unwrap();
        assert_eq!(back, users);
        let kim = back.get("inv-kim").unwrap();
        assert!(kim.password_matches("correct horse battery"));
        assert!(!kim.password_matches("correct horse batter"));
        assert!(kim.sees_region(Some("seoul")));
        assert!(!kim.sees_region(Some("busan")));
        assert!(!kim.sees_region(None));
    }

    #[test]
    fn bad_users_are_refused() {
        let mut users = Users::default();
        users.add(inv("inv-kim"), "correct horse battery").unwrap();
        assert!(users.add(inv("inv-kim"), "correct horse battery").is_err());
        assert!(users.add(inv("inv-lee"), "short").is_err());
        let mut no_region = inv("inv-lee");
        no_region.regions.clear();
        assert!(users.add(no_region, "correct horse battery").is_err());
        let approver = NewUser {
            name: "police-park".into(),
            role: ApiRole::Approver,
            regions: vec![],
            authority: None,
            category: Some(Category::Card),
        };
        assert!(users.add(approver, "correct horse battery").is_err());
        assert!(users.add(inv("bad name"), "correct horse battery").is_err());
        assert!(users.disable("inv-kim").unwrap());
        assert!(!users.disable("inv-kim").unwrap());
        assert!(users.disable("nobody").is_err());
    }

    #[test]
    fn a_file_with_unknown_keys_or_duplicates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        let hash = hash_password("correct horse battery").unwrap();
        std::fs::write(
            &path,
            format!("[[user]]\nname = \"a\"\nrole = \"admin\"\npassword_hash = \"{hash}\"\nsuperuser = true\n"),
        )
        .unwrap();
        assert!(Users::load(&path).is_err());
        std::fs::write(
            &path,
            format!("[[user]]\nname = \"a\"\nrole = \"admin\"\npassword_hash = \"{hash}\"\n[[user]]\nname = \"a\"\nrole = \"auditor\"\npassword_hash = \"{hash}\"\n"),
        )
        .unwrap();
        let err = Users::load(&path).unwrap_err().to_string();
        assert!(err.contains("twice"), "{err}");
        assert!(!err.contains("argon2"), "no hash in errors: {err}");
    }
}
