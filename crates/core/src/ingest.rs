//! Feed records → observations, and case events → infectious windows.
//!
//! The only place where provider semantics enter the core: which footprint
//! a record stands for, and how long a stay it implies.
//!
//! | record | footprint | stay |
//! |---|---|---|
//! | `LocationPing` | accuracy → resolution | `segment.ping_dwell` (default 0: an instant) |
//! | `CardTransaction` | merchant geocode accuracy → resolution | by MCC (`segment.card_dwell`) |
//! | `VenueCheckin` | the venue at `footprint.max_res` | checkout − check-in, capped at `segment.checkin_max_dwell`; `segment.checkin_default_dwell` without a checkout |

use epitrace_model::records::{
    CardTransaction, CaseEvent, LocationPing, LocationSource, VenueCheckin,
};
use epitrace_model::{Cell, EventTime, SubjectId};
use h3o::Resolution;

use crate::config::{ExposureConfig, SegmentConfig, TracingConfig};
use crate::duration::Span;
use crate::footprint::{FootprintCache, Footprinter};
use crate::interval::Interval;
use crate::join::infectious_window;
use crate::observation::{Observation, Source};

/// Converts feed records into [`Observation`]s for one configuration.
#[derive(Debug, Clone)]
pub struct Ingest {
    footprinter: Footprinter,
    venue_res: Resolution,
    segment: SegmentConfig,
}

impl Ingest {
    /// Prepares the conversion (precomputes the footprint ladder).
    #[must_use]
    pub fn new(cfg: &TracingConfig) -> Self {
        Self {
            footprinter: Footprinter::new(&cfg.footprint),
            venue_res: Resolution::try_from(cfg.footprint.max_res.min(15))
                .unwrap_or(Resolution::Ten),
            segment: cfg.segment.clone(),
        }
    }

    /// A telecom location record.
    #[must_use]
    pub fn ping(&self, ping: &LocationPing) -> (SubjectId, Observation) {
        self.ping_at(ping, self.footprinter.cell(ping.position, ping.accuracy))
    }

    /// [`Self::ping`], its footprint memoised in `cache` (the hot path).
    pub fn ping_cached(
        &self,
        ping: &LocationPing,
        cache: &mut FootprintCache,
    ) -> (SubjectId, Observation) {
        self.ping_at(
            ping,
            cache.cell(&self.footprinter, ping.position, ping.accuracy),
        )
    }

    fn ping_at(&self, ping: &LocationPing, cell: Cell) -> (SubjectId, Observation) {
        let source = match ping.source {
            LocationSource::Cell => Source::Cell,
            LocationSource::Gps => Source::Gps,
            LocationSource::Wifi => Source::Wifi,
        };
        let obs = Observation {
            time: ping.observed_at,
            cell,
            source,
            dwell: self.segment.ping_dwell,
        };
        (ping.subject, obs)
    }

    /// A card payment: the subject stayed at the merchant for the MCC's
    /// typical time from the payment on.
    #[must_use]
    pub fn card(&self, tx: &CardTransaction) -> (SubjectId, Observation) {
        let obs = Observation {
            time: tx.observed_at,
            cell: self.footprinter.cell(tx.position, tx.accuracy),
            source: Source::Card,
            dwell: self.segment.dwell_for_mcc(tx.mcc.code()),
        };
        (tx.subject, obs)
    }

    /// A venue check-in: the venue's cell at the finest footprint
    /// resolution, for the stay the checkout gives (capped) or the default.
    #[must_use]
    pub fn checkin(&self, checkin: &VenueCheckin) -> (SubjectId, Observation) {
        let max = self.segment.checkin_max_dwell;
        let dwell = checkin
            .checkout_at
            .map_or(self.segment.checkin_default_dwell, |out| {
                Span::from_millis(out.millis_since(checkin.observed_at)).min(max)
            });
        let obs = Observation {
            time: checkin.observed_at,
            cell: checkin.position.to_cell(self.venue_res),
            source: Source::Checkin,
            dwell,
        };
        (checkin.subject, obs)
    }
}

/// The window a case's segments are traced over: `[infectious_from,
/// infectious_until)`, open-ended while `infectious_until` is unknown.
#[must_use]
pub fn case_window(event: &CaseEvent) -> Interval {
    infectious_window(event.infectious_from, event.infectious_until)
}

/// The start of infectiousness when the authority has not set one: the
/// configured look-back (default 2 days, US CDC / KDCA practice) before
/// symptom onset, or before the specimen date for an asymptomatic case.
#[must_use]
pub fn default_infectious_from(
    symptom_onset: Option<EventTime>,
    specimen_at: EventTime,
    cfg: &ExposureConfig,
) -> EventTime {
    symptom_onset
        .unwrap_or(specimen_at)
        .saturating_add_ms(-cfg.lookback_before_onset.as_millis())
}

#[cfg(test)]
mod tests {
    use epitrace_model::time::{HOUR_MS, MINUTE_MS};
    use epitrace_model::{LatLng, VenueId};

    use super::*;

    fn at(min: i64) -> EventTime {
        EventTime::from_millis("t", 1_588_377_600_000 + min * MINUTE_MS).unwrap()
    }

    fn checkin(out: Option<i64>) -> VenueCheckin {
        VenueCheckin {
            subject: SubjectId::from_bytes([1; 16]),
            venue_id: VenueId::new("v").unwrap(),
            position: LatLng::new(37.5344, 126.9946).unwrap(),
            observed_at: at(0),
            checkout_at: out.map(at),
        }
    }

    #[test]
    fn checkin_stay_uses_checkout_capped_or_default() {
        let cfg = TracingConfig::default();
        let ingest = Ingest::new(&cfg);
        let (_, obs) = ingest.checkin(&checkin(Some(90)));
        assert_eq!(obs.dwell, Span::minutes(90));
        assert_eq!(obs.cell.resolution(), Resolution::Ten);
        let (_, obs) = ingest.checkin(&checkin(Some(48 * 60)));
        assert_eq!(
            obs.dwell, cfg.segment.checkin_max_dwell,
            "a forgotten checkout is capped"
        );
        let (_, obs) = ingest.checkin(&checkin(None));
        assert_eq!(obs.dwell, cfg.segment.checkin_default_dwell);
    }

    #[test]
    fn infectious_from_defaults_to_two_days_before_onset_or_specimen() {
        let cfg = ExposureConfig::default();
        assert_eq!(
            default_infectious_from(Some(at(0)), at(3000), &cfg),
            at(0).saturating_add_ms(-48 * HOUR_MS)
        );
        assert_eq!(
            default_infectious_from(None, at(3000), &cfg),
            at(3000).saturating_add_ms(-48 * HOUR_MS)
        );
    }
}
