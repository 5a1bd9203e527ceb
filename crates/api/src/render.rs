//! Records as the API's JSON (times in RFC 3339 UTC, pseudonyms and cells
//! in hex). Shared with the CLI's `--json` output.

use epitrace_core::interview::Correlation;
use epitrace_model::records::{
    AuditRecord, ClusterAlert, DataAccessApproval, Exposure, InterviewEntry, Visit,
};
use epitrace_model::{CaseId, Cell, ContactClass};
use serde_json::{Value, json};

use crate::token::hex;
use crate::users::User;
use crate::view::CaseState;

/// A cell as hex (its H3 index).
#[must_use]
pub fn cell_hex(cell: Cell) -> String {
    format!("{:x}", cell.raw())
}

/// A case and its approval status.
#[must_use]
pub fn case_state(s: &CaseState<'_>) -> Value {
    let e = s.event;
    json!({
        "case_id": e.case_id.as_str(),
        "status": e.status.as_symbol(),
        "region": e.region.as_ref().map(|r| r.as_str()),
        "confirmed_at": e.confirmed_at.to_string(),
        "symptom_onset": e.symptom_onset.map(|t| t.to_string()),
        "infectious_from": e.infectious_from.to_string(),
        "infectious_until": e.infectious_until.map(|t| t.to_string()),
        "pending_approval": s.pending,
        "open_categories": s.open.categories().map(|c| c.as_str()).collect::<Vec<_>>(),
        "approvals": s.approvals.iter().map(|(a, holds)| approval(a, Some(*holds))).collect::<Vec<_>>(),
        "visits": s.visits,
        "exposures": s.exposures,
    })
}

/// An approval; `holds` when known.
#[must_use]
pub fn approval(a: &DataAccessApproval, holds: Option<bool>) -> Value {
    let mut v = json!({
        "case_id": a.case_id.as_str(),
        "category": a.category.as_symbol(),
        "authority": a.authority.as_str(),
        "reference": a.reference.as_str(),
        "approved_at": a.approved_at.to_string(),
        "expires_at": a.expires_at.to_string(),
    });
    if let (Some(h), Some(o)) = (holds, v.as_object_mut()) {
        o.insert("holds".into(), Value::Bool(h));
    }
    v
}

/// A visit of a case's timeline.
#[must_use]
pub fn visit(v: &Visit) -> Value {
    let c = v.cell.center();
    json!({
        "visit_id": v.visit_id.as_str(),
        "subject": v.subject.to_hex(),
        "start": v.start.to_string(),
        "end": v.end.to_string(),
        "dwell_s": v.dwell_s,
        "cell": cell_hex(v.cell),
        "res": v.res(),
        "lat": c.lat(),
        "lng": c.lng(),
        "sources": v.sources.iter().map(|s| s.as_symbol()).collect::<Vec<_>>(),
        "confidence": v.confidence.get(),
    })
}

/// An exposure with its evidence (investigators).
#[must_use]
pub fn exposure(e: &Exposure) -> Value {
    let c = e.first_cell.center();
    json!({
        "exposure_id": e.exposure_id.as_str(),
        "contact": e.contact.to_hex(),
        "minutes": e.cumulative_s / 60,
        "cumulative_s": e.cumulative_s,
        "risk": e.risk.get(),
        "status": e.status.as_symbol(),
        "first_cell": cell_hex(e.first_cell),
        "lat": c.lat(),
        "lng": c.lng(),
        "windows": e.windows.iter().map(|w| json!({"start": w.start().to_string(), "end": w.end().to_string()})).collect::<Vec<_>>(),
        "detected_at": e.detected_at.to_string(),
        "evidence": e.evidence.iter().map(|c| c.as_symbol()).collect::<Vec<_>>(),
        "likelihood": e.likelihood.map(|p| p.get()),
        "class": e.contact_class.map(|c| c.as_symbol()),
        "basis": e.basis.map(|b| json!({"fine_s": b.fine_s, "near_s": b.near_s, "wide_s": b.wide_s, "apart_s": b.apart_s, "transit_s": b.transit_s})),
    })
}

/// A case's contacts as pseudonyms and counts (epidemiologists): per
/// contact its number of exposures and minutes, no places, no times.
#[must_use]
pub fn contacts_pseudonymous(case: &CaseId, exposures: &[&Exposure]) -> Value {
    let mut per: std::collections::BTreeMap<String, (u32, u64)> = Default::default();
    for e in exposures {
        let entry = per.entry(e.contact.to_hex()).or_default();
        entry.0 += 1;
        entry.1 += u64::from(e.cumulative_s);
    }
    let close = exposures
        .iter()
        .filter(|e| e.contact_class == Some(ContactClass::Close))
        .count();
    json!({
        "case_id": case.as_str(),
        "view": "pseudonymous",
        "contacts": per.len(),
        "exposures": exposures.len(),
        "close": close,
        "area": exposures.len() - close,
        "by_contact": per.into_iter().map(|(c, (n, s))| json!({"contact": c, "exposures": n, "minutes": s / 60})).collect::<Vec<_>>(),
    })
}

/// An interview entry with what the case's timeline says about it;
/// `visits` are the visits the correlation's indexes point into.
#[must_use]
pub fn interview(e: &InterviewEntry, c: &Correlation, visits: &[&Visit]) -> Value {
    let ids = |idx: &[usize]| -> Vec<Value> {
        idx.iter()
            .filter_map(|i| visits.get(*i))
            .map(|v| visit(v))
            .collect()
    };
    json!({
        "entry_id": e.entry_id.as_str(),
        "lat": e.position.lat(),
        "lng": e.position.lng(),
        "radius_m": e.radius_m,
        "start": e.start.to_string(),
        "end": e.end.to_string(),
        "label": e.label.as_ref().map(|l| l.as_str()),
        "recorded_by": e.recorded_by.as_str(),
        "recorded_at": e.recorded_at.to_string(),
        "verdict": c.verdict,
        "sources": c.sources.iter().map(|s| s.as_symbol()).collect::<Vec<_>>(),
        "corroborated_minutes": c.corroborated_ms / 60_000,
        "nearest_m": c.nearest_m.map(f64::round),
        "corroborating": ids(&c.corroborating),
        "contradicting": ids(&c.contradicting),
    })
}

/// A cluster with its places and likely sources.
#[must_use]
pub fn cluster(a: &ClusterAlert) -> Value {
    let places: Vec<Value> = a
        .places
        .iter()
        .map(|p| {
            let c = p.cell().center();
            json!({
                "cell": cell_hex(p.cell()),
                "res": u8::from(p.cell().resolution()),
                "lat": c.lat(),
                "lng": c.lng(),
                "start": p.start().to_string(),
                "end": p.end().to_string(),
                "source_case": p.source_case().map(CaseId::as_str),
                "cases": p.cases().iter().map(CaseId::as_str).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "cluster_id": a.cluster_id.as_str(),
        "status": a.status.as_symbol(),
        "size": a.size,
        "index_case": a.index_case.as_ref().map(CaseId::as_str),
        "source_evidence": a.source_evidence.as_str(),
        "cases": a.cases.iter().map(CaseId::as_str).collect::<Vec<_>>(),
        "places": places,
        "merged_into": a.merged_into.as_ref().map(|m| m.as_str()),
        "detected_at": a.detected_at.to_string(),
        "linked_clusters": a.linked_clusters.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
    })
}

/// An audit record.
#[must_use]
pub fn audit(r: &AuditRecord) -> Value {
    json!({
        "seq": r.seq,
        "at": r.at.to_string(),
        "actor": r.actor.as_str(),
        "role": r.role.as_symbol(),
        "action": r.action.as_symbol(),
        "resource": r.resource.as_str(),
        "case_id": r.case_id.as_ref().map(CaseId::as_str),
        "purpose": r.purpose.as_str(),
        "outcome": r.outcome.as_symbol(),
        "prev_hash": hex(&r.prev_hash),
        "hash": hex(&r.hash),
    })
}

/// A user, without the password hash.
#[must_use]
pub fn user(u: &User) -> Value {
    json!({
        "name": u.name,
        "role": u.role.as_str(),
        "regions": u.regions,
        "authority": u.authority,
        "category": u.category.map(|c| c.as_str()),
        "disabled": u.disabled,
    })
}
