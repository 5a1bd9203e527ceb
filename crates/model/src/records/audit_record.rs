//! `audit.log`: one access to personal data, hash-chained.

use apache_avro::types::Value;

use crate::codec::AvroRecord;
use crate::error::ModelError;
use crate::ids::{ActorId, CaseId};
use crate::records::symbol_enum;
use crate::text::Text;
use crate::time::EventTime;
use crate::value::{Fields, opt, record, str_value, ts};

symbol_enum!(
    /// The role an actor acts in, which determines what it may access.
    Role, "role", {
        /// Traces cases: reads timelines and exposures of assigned cases.
        Investigator = "INVESTIGATOR",
        /// Reads clusters and aggregate outputs.
        Epidemiologist = "EPIDEMIOLOGIST",
        /// Runs the pipeline, purges data.
        Operator = "OPERATOR",
        /// Reads the audit log.
        Auditor = "AUDITOR",
        /// An automated service.
        Service = "SERVICE",
        /// Posts data-access approvals for one authority's category.
        Approver = "APPROVER",
        /// Manages the API's users; sees no personal data.
        Admin = "ADMIN",
        /// A request that named no valid user (no or a bad token, a login
        /// for an unknown name).
        Anonymous = "ANONYMOUS",
    }
);

symbol_enum!(
    /// What was done: an access to personal data, an API request, a purge.
    AuditAction, "action", {
        /// Read a case.
        ReadCase = "READ_CASE",
        /// Read a case's timeline.
        ReadTimeline = "READ_TIMELINE",
        /// Read a case's exposures.
        ReadExposures = "READ_EXPOSURES",
        /// Read a cluster.
        ReadCluster = "READ_CLUSTER",
        /// Exported data out of epitrace.
        Export = "EXPORT",
        /// Purged data.
        Purge = "PURGE",
        /// Recorded a data-access approval.
        GrantApproval = "GRANT_APPROVAL",
        /// Logged in (or tried to).
        Login = "LOGIN",
        /// Listed cases and their status.
        ListCases = "LIST_CASES",
        /// Read data-access approvals.
        ReadApprovals = "READ_APPROVALS",
        /// Read or verified the audit log.
        ReadAudit = "READ_AUDIT",
        /// Listed, added or disabled users.
        ManageUsers = "MANAGE_USERS",
        /// A request to no known endpoint.
        InvalidRequest = "INVALID_REQUEST",
        /// Recorded interview statements of a case.
        RecordInterview = "RECORD_INTERVIEW",
        /// Read a case's interview statements and their correlation.
        ReadInterview = "READ_INTERVIEW",
    }
);

symbol_enum!(
    /// Result of an access.
    AuditOutcome, "outcome", {
        /// Allowed and done.
        Allowed = "ALLOWED",
        /// Denied by policy.
        Denied = "DENIED",
        /// Allowed but failed with an error.
        Failed = "FAILED",
    }
);

/// One access to personal data. Append-only and hash-chained: `hash` covers
/// `prev_hash` and this record's other fields, so a removed or altered record
/// breaks the chain. Computing the hash is the audit writer's job.
#[derive(Clone, PartialEq, Debug)]
pub struct AuditRecord {
    /// Position in the chain, from 0, without gaps (>= 0).
    pub seq: i64,
    /// When the access happened.
    pub at: EventTime,
    /// Who acted.
    pub actor: ActorId,
    /// The role the actor acted in.
    pub role: Role,
    /// What was done.
    pub action: AuditAction,
    /// What was accessed.
    pub resource: Text,
    /// The case concerned, if any.
    pub case_id: Option<CaseId>,
    /// Why, as stated by the actor.
    pub purpose: Text,
    /// Result of the access.
    pub outcome: AuditOutcome,
    /// `hash` of the previous record (zeros for seq 0).
    pub prev_hash: [u8; 32],
    /// SHA-256 chaining this record to `prev_hash`.
    pub hash: [u8; 32],
}

impl AvroRecord for AuditRecord {
    const NAME: &'static str = "AuditRecord";

    crate::records::compiled_schema_set!(AUDIT_RECORD);

    fn to_value(&self) -> Value {
        record([
            ("seq", Value::Long(self.seq)),
            ("at", ts(self.at)),
            ("actor", str_value(self.actor.as_str())),
            ("role", self.role.to_value()),
            ("action", self.action.to_value()),
            ("resource", str_value(self.resource.as_str())),
            (
                "case_id",
                opt(self.case_id.as_ref().map(|c| str_value(c.as_str()))),
            ),
            ("purpose", str_value(self.purpose.as_str())),
            ("outcome", self.outcome.to_value()),
            ("prev_hash", Value::Fixed(32, self.prev_hash.to_vec())),
            ("hash", Value::Fixed(32, self.hash.to_vec())),
        ])
    }

    fn from_value(value: &Value) -> Result<Self, ModelError> {
        let f = Fields::of(Self::NAME, value)?;
        let audit = Self {
            seq: f.long("seq")?,
            at: f.time("at")?,
            actor: ActorId::new(f.string("actor")?)?,
            role: Role::from_symbol(f.symbol("role")?)?,
            action: AuditAction::from_symbol(f.symbol("action")?)?,
            resource: Text::new("resource", f.string("resource")?)?,
            case_id: f.opt_string("case_id")?.map(CaseId::new).transpose()?,
            purpose: Text::new("purpose", f.string("purpose")?)?,
            outcome: AuditOutcome::from_symbol(f.symbol("outcome")?)?,
            prev_hash: f.fixed("prev_hash")?,
            hash: f.fixed("hash")?,
        };
        audit.validate()?;
        Ok(audit)
    }

    fn validate(&self) -> Result<(), ModelError> {
        if self.seq < 0 {
            return Err(ModelError::InvalidRecord {
                field: "seq",
                reason: "negative",
            });
        }
        Ok(())
    }

    fn timestamps(&self) -> Vec<(&'static str, EventTime)> {
        vec![("at", self.at)]
    }
}
