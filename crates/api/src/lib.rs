//! `epitrace serve`: the investigators' API.
//!
//! An HTTP server (TLS when given a certificate) that keeps a view of the
//! output topics in memory and serves cases and their approval status, a
//! case's timeline, its contacts, clusters, approvals (listed and posted),
//! the audit log and the user list — each to the roles whose duty needs it,
//! and every request, allowed or not, recorded on the hash-chained
//! `audit.log` before its response leaves.
//!
//! - [`config`]: `ApiConfig`, the `[api]` table.
//! - [`users`]: the users file (argon2id password hashes, roles, regions,
//!   approvers' authority and category), managed by `epitrace users`.
//! - [`token`]: short-lived session tokens signed with HMAC-SHA-256.
//! - [`lockout`]: failed logins counted per name, with a lockout.
//! - [`policy`]: the endpoints and the role × endpoint matrix (pure).
//! - [`view`]: the fold of the topics the API serves (pure).
//! - [`render`]: records as JSON.
//! - [`server`]: the HTTP shell: routing, authentication, authorisation,
//!   the audit of every request (group-committed), TLS, the follower
//!   thread that keeps the view.

pub mod config;
pub mod error;
pub mod lockout;
pub mod policy;
pub mod render;
pub mod server;
pub mod token;
pub mod users;
pub mod view;

pub use config::ApiConfig;
pub use error::ApiError;
pub use policy::{Access, ApiRole, Endpoint, EndpointKind};
pub use server::{Server, ServerHandle};
pub use users::{NewUser, User, Users};
