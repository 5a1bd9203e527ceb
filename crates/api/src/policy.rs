//! The endpoints and who may call them: pure, so that the matrix is one
//! table, tested as a table and printed in the README.
//!
//! Every request is parsed into an [`Endpoint`] before anything else; the
//! server authenticates it, asks [`access`] whether the caller's role may
//! call it, and records it on the audit log with the endpoint's
//! [`EndpointKind::action`]. Region and category scoping (an investigator
//! sees the cases of their regions, an approver the approvals of their
//! category) is applied by the handlers on top of [`Access::Full`].

use std::fmt;

use epitrace_model::records::{AuditAction, Role};
use epitrace_model::{ActorId, CaseId, ClusterId};
use serde::{Deserialize, Serialize};

/// The roles of API users.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiRole {
    /// Traces the cases of their regions: all of a case's personal data
    /// that its approvals open.
    Investigator,
    /// Clusters and aggregates; contacts only as pseudonyms and counts.
    Epidemiologist,
    /// Posts approvals for their authority's category only.
    Approver,
    /// The audit log; no personal data.
    Auditor,
    /// Users; no personal data.
    Admin,
}

impl ApiRole {
    /// Every role, in the matrix's column order.
    pub const ALL: [Self; 5] = [
        Self::Investigator,
        Self::Epidemiologist,
        Self::Approver,
        Self::Auditor,
        Self::Admin,
    ];

    /// The name used in the users file and on the command line.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Investigator => "investigator",
            Self::Epidemiologist => "epidemiologist",
            Self::Approver => "approver",
            Self::Auditor => "auditor",
            Self::Admin => "admin",
        }
    }

    /// The role as `audit.log` records it.
    #[must_use]
    pub const fn audit_role(self) -> Role {
        match self {
            Self::Investigator => Role::Investigator,
            Self::Epidemiologist => Role::Epidemiologist,
            Self::Approver => Role::Approver,
            Self::Auditor => Role::Auditor,
            Self::Admin => Role::Admin,
        }
    }

    /// Parses [`ApiRole::as_str`].
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    const fn column(self) -> usize {
        match self {
            Self::Investigator => 0,
            Self::Epidemiologist => 1,
            Self::Approver => 2,
            Self::Auditor => 3,
            Self::Admin => 4,
        }
    }
}

impl fmt::Display for ApiRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a role may do at an endpoint.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Access {
    /// Refused (403).
    Denied,
    /// Allowed, within the caller's scope (regions, category).
    Full,
    /// Allowed without personal data: pseudonyms and counts only.
    Pseudonymous,
}

/// An endpoint without its arguments: a row of the matrix.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum EndpointKind {
    /// `POST /v1/login`.
    Login,
    /// `GET /v1/cases`.
    ListCases,
    /// `GET /v1/cases/{case}`.
    Case,
    /// `GET /v1/cases/{case}/timeline`.
    Timeline,
    /// `GET /v1/cases/{case}/contacts`.
    Contacts,
    /// `GET /v1/cases/{case}/interview`.
    Interview,
    /// `POST /v1/cases/{case}/interview`.
    PostInterview,
    /// `GET /v1/clusters`.
    ListClusters,
    /// `GET /v1/clusters/{cluster}`.
    Cluster,
    /// `GET /v1/approvals`.
    ListApprovals,
    /// `POST /v1/approvals`.
    PostApproval,
    /// `GET /v1/audit`.
    Audit,
    /// `GET /v1/audit/verify`.
    AuditVerify,
    /// `GET /v1/users`.
    Users,
    /// `POST /v1/users/{name}/disable`.
    DisableUser,
}

use Access::{Denied as D, Full as F, Pseudonymous as P};

/// The matrix: per endpoint, the access of investigator, epidemiologist,
/// approver, auditor, admin (the columns of [`ApiRole::ALL`]). Login is
/// open to everyone (it is how a role is obtained).
pub const MATRIX: [(EndpointKind, [Access; 5]); 15] = [
    (EndpointKind::Login, [F, F, F, F, F]),
    (EndpointKind::ListCases, [F, F, F, D, D]),
    (EndpointKind::Case, [F, F, F, D, D]),
    (EndpointKind::Timeline, [F, D, D, D, D]),
    (EndpointKind::Contacts, [F, P, D, D, D]),
    (EndpointKind::Interview, [F, D, D, D, D]),
    (EndpointKind::PostInterview, [F, D, D, D, D]),
    (EndpointKind::ListClusters, [F, F, D, D, D]),
    (EndpointKind::Cluster, [F, F, D, D, D]),
    (EndpointKind::ListApprovals, [F, D, F, D, D]),
    (EndpointKind::PostApproval, [D, D, F, D, D]),
    (EndpointKind::Audit, [D, D, D, F, D]),
    (EndpointKind::AuditVerify, [D, D, D, F, D]),
    (EndpointKind::Users, [D, D, D, D, F]),
    (EndpointKind::DisableUser, [D, D, D, D, F]),
];

/// What `role` may do at `kind` ([`MATRIX`]).
#[must_use]
pub fn access(role: ApiRole, kind: EndpointKind) -> Access {
    MATRIX
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or(Access::Denied, |(_, row)| row[role.column()])
}

impl EndpointKind {
    /// What `audit.log` records for a request to this endpoint.
    #[must_use]
    pub const fn action(self) -> AuditAction {
        match self {
            Self::Login => AuditAction::Login,
            Self::ListCases => AuditAction::ListCases,
            Self::Case => AuditAction::ReadCase,
            Self::Timeline => AuditAction::ReadTimeline,
            Self::Contacts => AuditAction::ReadExposures,
            Self::Interview => AuditAction::ReadInterview,
            Self::PostInterview => AuditAction::RecordInterview,
            Self::ListClusters | Self::Cluster => AuditAction::ReadCluster,
            Self::ListApprovals => AuditAction::ReadApprovals,
            Self::PostApproval => AuditAction::GrantApproval,
            Self::Audit | Self::AuditVerify => AuditAction::ReadAudit,
            Self::Users | Self::DisableUser => AuditAction::ManageUsers,
        }
    }

    /// Whether a request must state its purpose (the
    /// `X-Epitrace-Purpose` header): every read of a case's data.
    #[must_use]
    pub const fn needs_purpose(self) -> bool {
        matches!(
            self,
            Self::Case
                | Self::Timeline
                | Self::Contacts
                | Self::Interview
                | Self::PostInterview
                | Self::ListApprovals
                | Self::PostApproval
        )
    }

    /// The `endpoint` label of `epitrace_api_requests_total`.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::ListCases => "list_cases",
            Self::Case => "case",
            Self::Timeline => "timeline",
            Self::Contacts => "contacts",
            Self::Interview => "interview",
            Self::PostInterview => "post_interview",
            Self::ListClusters => "list_clusters",
            Self::Cluster => "cluster",
            Self::ListApprovals => "list_approvals",
            Self::PostApproval => "post_approval",
            Self::Audit => "audit",
            Self::AuditVerify => "audit_verify",
            Self::Users => "users",
            Self::DisableUser => "disable_user",
        }
    }

    /// Method and path pattern, as the README lists them.
    #[must_use]
    pub const fn route(self) -> &'static str {
        match self {
            Self::Login => "POST /v1/login",
            Self::ListCases => "GET /v1/cases",
            Self::Case => "GET /v1/cases/{case}",
            Self::Timeline => "GET /v1/cases/{case}/timeline",
            Self::Contacts => "GET /v1/cases/{case}/contacts",
            Self::Interview => "GET /v1/cases/{case}/interview",
            Self::PostInterview => "POST /v1/cases/{case}/interview",
            Self::ListClusters => "GET /v1/clusters",
            Self::Cluster => "GET /v1/clusters/{cluster}",
            Self::ListApprovals => "GET /v1/approvals",
            Self::PostApproval => "POST /v1/approvals",
            Self::Audit => "GET /v1/audit",
            Self::AuditVerify => "GET /v1/audit/verify",
            Self::Users => "GET /v1/users",
            Self::DisableUser => "POST /v1/users/{name}/disable",
        }
    }
}

/// A request's endpoint with its path arguments, validated.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Endpoint {
    /// `POST /v1/login`.
    Login,
    /// `GET /v1/cases`.
    ListCases,
    /// `GET /v1/cases/{case}`.
    Case(CaseId),
    /// `GET /v1/cases/{case}/timeline`.
    Timeline(CaseId),
    /// `GET /v1/cases/{case}/contacts`.
    Contacts(CaseId),
    /// `GET /v1/cases/{case}/interview`.
    Interview(CaseId),
    /// `POST /v1/cases/{case}/interview`.
    PostInterview(CaseId),
    /// `GET /v1/clusters`.
    ListClusters,
    /// `GET /v1/clusters/{cluster}`.
    Cluster(ClusterId),
    /// `GET /v1/approvals`.
    ListApprovals,
    /// `POST /v1/approvals`.
    PostApproval,
    /// `GET /v1/audit`.
    Audit,
    /// `GET /v1/audit/verify`.
    AuditVerify,
    /// `GET /v1/users`.
    Users,
    /// `POST /v1/users/{name}/disable`.
    DisableUser(ActorId),
}

/// Why a request names no endpoint.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum RouteError {
    /// No endpoint has this path (404).
    NotFound,
    /// The path exists for other methods (405).
    MethodNotAllowed(EndpointKind),
    /// The path's id argument is not a valid id (400); the kind it would
    /// have been.
    BadId(EndpointKind, &'static str),
}

impl Endpoint {
    /// The endpoint of `method` and `path` (without its query string).
    ///
    /// # Errors
    /// [`RouteError`] for an unknown path, a wrong method or an invalid
    /// id in the path.
    pub fn parse(method: &str, path: &str) -> Result<Self, RouteError> {
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        let (kind, arg) = match segments.as_slice() {
            ["", "v1", "login"] => (EndpointKind::Login, None),
            ["", "v1", "cases"] => (EndpointKind::ListCases, None),
            ["", "v1", "cases", id] => (EndpointKind::Case, Some(*id)),
            ["", "v1", "cases", id, "timeline"] => (EndpointKind::Timeline, Some(*id)),
            ["", "v1", "cases", id, "contacts"] => (EndpointKind::Contacts, Some(*id)),
            ["", "v1", "cases", id, "interview"] => (
                if method == "POST" {
                    EndpointKind::PostInterview
                } else {
                    EndpointKind::Interview
                },
                Some(*id),
            ),
            ["", "v1", "clusters"] => (EndpointKind::ListClusters, None),
            ["", "v1", "clusters", id] => (EndpointKind::Cluster, Some(*id)),
            ["", "v1", "approvals"] => (
                if method == "POST" {
                    EndpointKind::PostApproval
                } else {
                    EndpointKind::ListApprovals
                },
                None,
            ),
            ["", "v1", "audit"] => (EndpointKind::Audit, None),
            ["", "v1", "audit", "verify"] => (EndpointKind::AuditVerify, None),
            ["", "v1", "users"] => (EndpointKind::Users, None),
            ["", "v1", "users", name, "disable"] => (EndpointKind::DisableUser, Some(*name)),
            _ => return Err(RouteError::NotFound),
        };
        let wanted = if matches!(
            kind,
            EndpointKind::Login
                | EndpointKind::PostApproval
                | EndpointKind::PostInterview
                | EndpointKind::DisableUser
        ) {
            "POST"
        } else {
            "GET"
        };
        if method != wanted {
            return Err(RouteError::MethodNotAllowed(kind));
        }
        let arg = arg.unwrap_or_default();
        let case = || CaseId::new(arg).map_err(|_| RouteError::BadId(kind, "case id"));
        Ok(match kind {
            EndpointKind::Login => Self::Login,
            EndpointKind::ListCases => Self::ListCases,
            EndpointKind::Case => Self::Case(case()?),
            EndpointKind::Timeline => Self::Timeline(case()?),
            EndpointKind::Contacts => Self::Contacts(case()?),
            EndpointKind::Interview => Self::Interview(case()?),
            EndpointKind::PostInterview => Self::PostInterview(case()?),
            EndpointKind::ListClusters => Self::ListClusters,
            EndpointKind::Cluster => Self::Cluster(
                ClusterId::new(arg).map_err(|_| RouteError::BadId(kind, "cluster id"))?,
            ),
            EndpointKind::ListApprovals => Self::ListApprovals,
            EndpointKind::PostApproval => Self::PostApproval,
            EndpointKind::Audit => Self::Audit,
            EndpointKind::AuditVerify => Self::AuditVerify,
            EndpointKind::Users => Self::Users,
            EndpointKind::DisableUser => Self::DisableUser(
                ActorId::new(arg).map_err(|_| RouteError::BadId(kind, "user name"))?,
            ),
        })
    }

    /// The row of the matrix.
    #[must_use]
    pub const fn kind(&self) -> EndpointKind {
        match self {
            Self::Login => EndpointKind::Login,
            Self::ListCases => EndpointKind::ListCases,
            Self::Case(_) => EndpointKind::Case,
            Self::Timeline(_) => EndpointKind::Timeline,
            Self::Contacts(_) => EndpointKind::Contacts,
            Self::Interview(_) => EndpointKind::Interview,
            Self::PostInterview(_) => EndpointKind::PostInterview,
            Self::ListClusters => EndpointKind::ListClusters,
            Self::Cluster(_) => EndpointKind::Cluster,
            Self::ListApprovals => EndpointKind::ListApprovals,
            Self::PostApproval => EndpointKind::PostApproval,
            Self::Audit => EndpointKind::Audit,
            Self::AuditVerify => EndpointKind::AuditVerify,
            Self::Users => EndpointKind::Users,
            Self::DisableUser(_) => EndpointKind::DisableUser,
        }
    }

    /// The case the path names, if any.
    #[must_use]
    pub const fn case(&self) -> Option<&CaseId> {
        match self {
            Self::Case(c)
            | Self::Timeline(c)
            | Self::Contacts(c)
            | Self::Interview(c)
            | Self::PostInterview(c) => Some(c),
            _ => None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_one_row_and_its_route_parses_back() {
        for (i, (kind, _)) in MATRIX.iter().enumerate() {
            assert!(MATRIX[..i].iter().all(|(k, _)| k != kind), "{kind:?} twice");
            let (method, pattern) = kind.route().split_once(' ').unwrap();
            let path = pattern
                .replace("{case}", "KR-2020-0031")
                .replace("{cluster}", "cl-1")
                .replace("{name}", "inv-kim");
            assert_eq!(Endpoint::parse(method, &path).unwrap().kind(), *kind);
        }
    }

    #[test]
    fn the_matrix_gives_personal_data_to_investigators_only() {
        use EndpointKind as K;
        for role in ApiRole::ALL {
            let personal = [K::Timeline, K::Contacts, K::Interview, K::PostInterview];
            for k in personal {
                let a = access(role, k);
                match role {
                    ApiRole::Investigator => assert_eq!(a, Access::Full),
                    ApiRole::Epidemiologist if k == K::Contacts => {
                        assert_eq!(a, Access::Pseudonymous);
                    }
                    _ => assert_eq!(a, Access::Denied, "{role} {k:?}"),
                }
            }
        }
        assert_eq!(access(ApiRole::Auditor, K::Audit), Access::Full);
        assert_eq!(access(ApiRole::Admin, K::Audit), Access::Denied);
        assert_eq!(
            access(ApiRole::Investigator, K::PostApproval),
            Access::Denied
        );
        assert_eq!(access(ApiRole::Approver, K::PostApproval), Access::Full);
    }

    #[test]
    fn bad_paths_methods_and_ids_are_told_apart() {
        assert_eq!(
            Endpoint::parse("GET", "/v1/nope"),
            Err(RouteError::NotFound)
        );
        assert_eq!(
            Endpoint::parse("GET", "/v1/cases/a/b/c"),
            Err(RouteError::NotFound)
        );
        assert_eq!(
            Endpoint::parse("DELETE", "/v1/cases/KR-1"),
            Err(RouteError::MethodNotAllowed(EndpointKind::Case))
        );
        assert_eq!(
            Endpoint::parse("GET", "/v1/login"),
            Err(RouteError::MethodNotAllowed(EndpointKind::Login))
        );
        assert_eq!(
            Endpoint::parse("GET", "/v1/cases/KR-1'%20OR%201=1/timeline"),
            Err(RouteError::BadId(EndpointKind::Timeline, "case id"))
        );
        assert_eq!(
            Endpoint::parse("GET", "/v1/cases/KR-2020-0031/"),
            Ok(Endpoint::Case(CaseId::new("KR-2020-0031").unwrap()))
        );
        assert_eq!(
            Endpoint::parse("POST", "/v1/approvals").unwrap().kind(),
            EndpointKind::PostApproval
        );
    }
}
