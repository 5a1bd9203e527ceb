//! Every threshold of the tracing logic, in one typed struct.
//!
//! Deserialises from the `[tracing]` part of the configuration file (TOML)
//! with unknown keys rejected; every field has a documented default, so an
//! empty table is a valid configuration. [`TracingConfig::validate`] checks the
//! values against each other.

use serde::{Deserialize, Serialize};

use crate::approval::ApprovalConfig;
use crate::duration::Span;
use crate::error::CoreError;

/// All thresholds of footprints, segments, the join and the exposure rule.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TracingConfig {
    /// How an observation's accuracy becomes an H3 cell.
    pub footprint: FootprintConfig,
    /// How observations become dwell segments.
    pub segment: SegmentConfig,
    /// How segments are bucketed for the presence join.
    pub join: JoinConfig,
    /// When an overlap counts as an exposure.
    pub exposure: ExposureConfig,
    /// How sure an exposure is, and which are close contacts.
    pub likelihood: crate::likelihood::LikelihoodConfig,
    /// When cases form a cluster.
    pub cluster: ClusterConfig,
    /// Which data categories need an approval before they are traced.
    pub approvals: ApprovalConfig,
    /// How interview statements are matched against a case's timeline.
    pub interview: crate::interview::InterviewConfig,
}

impl TracingConfig {
    /// Checks ranges and cross-field consistency.
    ///
    /// # Errors
    /// [`CoreError::InvalidConfig`] naming the first bad setting.
    pub fn validate(&self) -> Result<(), CoreError> {
        let bad =
            |field: &'static str, reason: String| Err(CoreError::InvalidConfig { field, reason });
        let fp = &self.footprint;
        if fp.max_res > 15 {
            return bad("footprint.max_res", format!("{} is above 15", fp.max_res));
        }
        if fp.min_res > fp.max_res {
            return bad(
                "footprint.min_res",
                format!("{} is finer than max_res {}", fp.min_res, fp.max_res),
            );
        }
        let seg = &self.segment;
        if seg.max_gap.as_millis() == 0 {
            return bad("segment.max_gap", "must be positive".into());
        }
        if seg.checkin_max_dwell < seg.checkin_default_dwell {
            return bad(
                "segment.checkin_max_dwell",
                "is shorter than checkin_default_dwell".into(),
            );
        }
        for rule in &seg.card_dwell {
            if rule.mcc_from > rule.mcc_to || rule.mcc_to > 9999 {
                return bad(
                    "segment.card_dwell",
                    format!("bad MCC range {}..={}", rule.mcc_from, rule.mcc_to),
                );
            }
        }
        let tr = &seg.transit;
        if tr.res < fp.min_res || tr.res > fp.max_res {
            return bad(
                "segment.transit.res",
                format!(
                    "{} is outside footprint.min_res..=max_res ({}..={})",
                    tr.res, fp.min_res, fp.max_res
                ),
            );
        }
        if tr.enabled && tr.max_gap.as_millis() <= 0 {
            return bad("segment.transit.max_gap", "must be positive".into());
        }
        if self.join.bucket.as_millis() == 0 {
            return bad("join.bucket", "must be positive".into());
        }
        let exp = &self.exposure;
        if exp.min_cumulative.as_millis() == 0 {
            return bad("exposure.min_cumulative", "must be positive".into());
        }
        if exp.window < exp.min_cumulative {
            return bad("exposure.window", "is shorter than min_cumulative".into());
        }
        if let Err((field, reason)) = self.likelihood.check() {
            return bad(field, reason);
        }
        let cl = &self.cluster;
        if cl.min_cases < 2 {
            return bad("cluster.min_cases", format!("{} is below 2", cl.min_cases));
        }
        if cl.place_res > 15 {
            return bad("cluster.place_res", format!("{} is above 15", cl.place_res));
        }
        if cl.max_places == 0 {
            return bad("cluster.max_places", "must be positive".into());
        }
        if !(0.0..=1.0).contains(&cl.chain_min_likelihood) {
            return bad(
                "cluster.chain_min_likelihood",
                format!("{} is not a probability", cl.chain_min_likelihood),
            );
        }
        if cl.watch_period.as_millis() == 0 {
            return bad("cluster.watch_period", "must be positive".into());
        }
        Ok(())
    }
}

/// Accuracy radius → H3 resolution (DESIGN §4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FootprintConfig {
    /// Coarsest resolution a footprint may have. Default 6 (edge ≈ 3.7 km):
    /// a rural tower's coverage. Also the resolution the presence join
    /// partitions by, so every footprint has an ancestor there.
    pub min_res: u8,
    /// Finest resolution a footprint may have. Default 10 (edge ≈ 66 m): a
    /// GPS fix or a merchant's geocode; finer would split one room.
    pub max_res: u8,
}

impl Default for FootprintConfig {
    fn default() -> Self {
        Self {
            min_res: 6,
            max_res: 10,
        }
    }
}

/// Observations → dwell segments (DESIGN §4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SegmentConfig {
    /// Longest silence between co-located observations that still counts as
    /// one continuous stay. Default `30m`: a phone at rest reports several
    /// times an hour (~230 records a day on average).
    pub max_gap: Span,
    /// How far behind a subject's latest observation an observation may
    /// arrive and still be placed exactly into the subject's segments.
    /// Later ones go to the subject's late lane (see `segment` module).
    /// Default `1h`.
    pub grace: Span,
    /// Presence attributed to a single location ping. Default `0s`: a ping is
    /// an instant; a stay needs two co-located pings.
    pub ping_dwell: Span,
    /// Stay assumed for a check-in without a checkout. Default `1h`.
    pub checkin_default_dwell: Span,
    /// Longest stay a check-in/checkout pair may claim (a forgotten checkout
    /// must not place someone in a club for two days). Default `12h`.
    pub checkin_max_dwell: Span,
    /// Stay assumed for a card payment whose MCC no rule matches.
    /// Default `10m`.
    pub card_default_dwell: Span,
    /// Stay assumed for a card payment, by merchant category code (ISO
    /// 18245). The first matching rule wins. Default: see
    /// [`default_card_dwell`].
    pub card_dwell: Vec<MccDwell>,
    /// Paths between moving GPS fixes, sampled for co-travel (see
    /// [`crate::transit`]).
    pub transit: crate::transit::TransitConfig,
}

impl Default for SegmentConfig {
    fn default() -> Self {
        Self {
            max_gap: Span::minutes(30),
            grace: Span::hours(1),
            ping_dwell: Span::ZERO,
            checkin_default_dwell: Span::hours(1),
            checkin_max_dwell: Span::hours(12),
            card_default_dwell: Span::minutes(10),
            card_dwell: default_card_dwell(),
            transit: crate::transit::TransitConfig::default(),
        }
    }
}

impl SegmentConfig {
    /// The stay assumed for a card payment with this merchant category code.
    #[must_use]
    pub fn dwell_for_mcc(&self, mcc: u16) -> Span {
        self.card_dwell
            .iter()
            .find(|rule| (rule.mcc_from..=rule.mcc_to).contains(&mcc))
            .map_or(self.card_default_dwell, |rule| rule.dwell)
    }
}

/// One rule of the card-dwell table: payments with an MCC in
/// `mcc_from..=mcc_to` imply a stay of `dwell` from the payment time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MccDwell {
    /// First MCC of the range.
    pub mcc_from: u16,
    /// Last MCC of the range (inclusive).
    pub mcc_to: u16,
    /// Assumed stay.
    pub dwell: Span,
    /// What the range is, for people reading the configuration.
    #[serde(default)]
    pub label: String,
}

/// The built-in card-dwell table: typical stays by merchant category, from
/// public time-use figures. A payment is usually made at the end of a
/// restaurant visit but at the start of a cinema one; the table errs towards
/// the whole visit and lets the segment sit at or after the payment time.
#[must_use]
pub fn default_card_dwell() -> Vec<MccDwell> {
    let rule = |from: u16, to: u16, minutes: i64, label: &str| MccDwell {
        mcc_from: from,
        mcc_to: to,
        dwell: Span::minutes(minutes),
        label: label.to_owned(),
    };
    vec![
        rule(4111, 4112, 30, "commuter transport, railways"),
        rule(4121, 4121, 20, "taxis"),
        rule(5311, 5311, 45, "department stores"),
        rule(5411, 5411, 20, "grocery stores, supermarkets"),
        rule(5499, 5499, 5, "convenience stores"),
        rule(5541, 5542, 5, "service stations"),
        rule(5812, 5812, 45, "restaurants"),
        rule(5813, 5813, 90, "bars, nightclubs"),
        rule(5814, 5814, 15, "fast food"),
        rule(7011, 7011, 480, "hotels"),
        rule(7230, 7230, 45, "beauty and barber shops"),
        rule(7832, 7832, 120, "cinemas"),
        rule(7911, 7911, 90, "dance halls"),
        rule(7941, 7941, 120, "sports clubs, stadiums"),
        rule(7997, 7997, 60, "clubs, gyms, fitness"),
        rule(8062, 8062, 60, "hospitals"),
        rule(8661, 8661, 90, "religious organisations"),
    ]
}

/// Time bucketing of the presence join (DESIGN §4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JoinConfig {
    /// Width of the time buckets segments are indexed under. A segment is
    /// indexed in every bucket it overlaps, a probe scans the buckets of the
    /// probing segment. Default `1h`: most stays span one or two buckets.
    pub bucket: Span,
    /// Segments the join keeps decoded in memory per partition and
    /// generation (two generations), so that a growing segment's previous
    /// version is not read back from RocksDB at every update. Speed only:
    /// the outputs do not depend on it; `0` turns it off. Default `32768`
    /// (about 10 MB per partition); size it to the phones of a partition
    /// (each has about one open segment) to keep every open segment in
    /// memory.
    pub cache_segments: usize,
}

impl Default for JoinConfig {
    fn default() -> Self {
        Self {
            bucket: Span::hours(1),
            cache_segments: 32_768,
        }
    }
}

/// The exposure rule (DESIGN §2): cumulative co-location of at least
/// `min_cumulative` within any `window`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExposureConfig {
    /// Least cumulative co-located time. Default `15m` (US CDC, KDCA).
    pub min_cumulative: Span,
    /// The sliding window the time accumulates in. Default `24h`.
    pub window: Span,
    /// How far before symptom onset (or specimen date) a case is infectious
    /// when a case event does not say. Default `2d`.
    pub lookback_before_onset: Span,
}

impl Default for ExposureConfig {
    fn default() -> Self {
        Self {
            min_cumulative: Span::minutes(15),
            window: Span::hours(24),
            lookback_before_onset: Span::days(2),
        }
    }
}

/// When confirmed cases form outbreak events (issues 5 and 15; see
/// `crate::cluster`).
///
/// Two cases are linked when they visited the same place within
/// `revisit_window` of each other (overlapping stays included), or when one
/// was a likely close contact of the other (an exposure chain). Links at one
/// place that share cases, with at least `min_cases` cases, are an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Fewest linked cases that make a cluster. Default 3 (KDCA: a cluster
    /// is three or more cases linked by place or contact).
    pub min_cases: u32,
    /// Coarsest footprint resolution that identifies a place. Default 9
    /// (edge ≈ 200 m): a downtown tower's sector, a GPS fix, a merchant. A
    /// 500 m tower (res 8) covers too many households to link two cases by
    /// place alone; such visits still count through exposure chains.
    pub place_res: u8,
    /// Shortest visit that counts as having been at a place. Default `15m`
    /// (the exposure rule's threshold): a walk past a club is not a visit.
    pub min_dwell: Span,
    /// Longest time between two cases' visits of one place that still links
    /// them. Default `7d` (churches, clubs, workplaces: one incubation
    /// period's worth of repeated attendance). Overlapping visits are a gap
    /// of zero.
    pub revisit_window: Span,
    /// Longest time from an exposure to the contact's infectious start for
    /// the exposure to count as the contact's infection (a chain link).
    /// Default `14d` (the longest incubation period traced). A contact who
    /// was already infectious at the time was not infected there.
    pub max_incubation: Span,
    /// Least likelihood (of a true close contact, see `[tracing.likelihood]`)
    /// an exposure needs to link the exposing case to its contact as the
    /// contact's likely source. Default 0.5, the `close` class at the
    /// default threshold: the `area` list is mostly people under the same
    /// tower, and linking through it joins unrelated cases into false
    /// events. Exposures without a likelihood (written before it existed)
    /// count. 0 links through every exposure.
    pub chain_min_likelihood: f64,
    /// Most place-times listed in an alert, earliest first. Default 64.
    pub max_places: u32,
    /// How long an event stays open without a new link: when its latest
    /// link ended this long before the detector's clock (event time), the
    /// event is published CLOSED. Default `14d`: one longest incubation
    /// period without a new linked case (WHO declares an outbreak over
    /// after two: set `28d` for that).
    pub watch_period: Span,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            min_cases: 3,
            place_res: 9,
            min_dwell: Span::minutes(15),
            revisit_window: Span::days(7),
            max_incubation: Span::days(14),
            chain_min_likelihood: 0.5,
            max_places: 64,
            watch_period: Span::days(14),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        TracingConfig::default().validate().unwrap();
    }

    #[test]
    fn toml_overrides_and_rejects_unknown_keys() {
        let cfg: TracingConfig =
            toml::from_str("[segment]\nmax_gap = \"20m\"\n[exposure]\nmin_cumulative = \"30m\"\n")
                .unwrap();
        assert_eq!(cfg.segment.max_gap, Span::minutes(20));
        assert_eq!(cfg.exposure.min_cumulative, Span::minutes(30));
        assert_eq!(
            cfg.segment.grace,
            Span::hours(1),
            "untouched keys keep defaults"
        );

        let err = toml::from_str::<TracingConfig>("[segment]\nmax_gapp = \"20m\"\n").unwrap_err();
        assert!(err.to_string().contains("max_gapp"), "{err}");
        assert!(toml::from_str::<TracingConfig>("[segment]\nmax_gap = \"soon\"\n").is_err());
    }

    #[test]
    fn validate_names_the_bad_field() {
        let mut cfg = TracingConfig::default();
        cfg.footprint.min_res = 11;
        assert!(matches!(
            cfg.validate(),
            Err(CoreError::InvalidConfig {
                field: "footprint.min_res",
                ..
            })
        ));
        let mut cfg = TracingConfig::default();
        cfg.exposure.window = Span::minutes(10);
        assert!(cfg.validate().is_err());
    }

    #[test]
    fn mcc_table_lookup() {
        let seg = SegmentConfig::default();
        assert_eq!(seg.dwell_for_mcc(5812), Span::minutes(45));
        assert_eq!(seg.dwell_for_mcc(5499), Span::minutes(5));
        assert_eq!(seg.dwell_for_mcc(1234), seg.card_default_dwell);
    }
}
