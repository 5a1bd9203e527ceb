//! Per-provider dead letters: which provider's own dead-letter topic
//! (`pipeline.deadletter.<provider>`) a feed record's dead letter is also
//! copied to.
//!
//! A provider names itself in the [`PROVIDER_HEADER`] of each record it
//! publishes. Only the feeds (`feeds.*`) are routed, and only to the
//! providers the authority listed in `topology.dead_letter_providers`
//! (whose topics exist and whose Read grants it made): any other header
//! value — unknown, not UTF-8, or on another topic — leaves the dead letter
//! on `pipeline.deadletter` alone. The header is the producer's word: a
//! provider that names another sends its own bad records to the other's
//! topic, but never reads another's, since the broker only lets it write
//! its own feed.

use std::sync::Arc;

use epitrace_model::topics::{CARD, CHECKIN, PROVIDER_HEADER, TELECOM, provider_dead_letters};
use rdkafka::message::{Headers, Message as _, OwnedMessage};

/// The configured providers and their dead-letter topics.
#[derive(Debug, Default)]
pub struct ProviderDeadLetters {
    /// (provider id, its topic), in configuration order; a handful.
    routes: Vec<(String, Arc<str>)>,
}

impl ProviderDeadLetters {
    /// The routes of `providers` (ids that cannot name a topic are left
    /// out; `TopologyConfig::validate` refuses them first).
    #[must_use]
    pub fn new(providers: &[String]) -> Self {
        Self {
            routes: providers
                .iter()
                .filter_map(|p| provider_dead_letters(p).map(|t| (p.clone(), Arc::from(t))))
                .collect(),
        }
    }

    /// No provider has a topic.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The provider topic for a record read from `topic` whose provider
    /// header is `header`, if any.
    #[must_use]
    pub fn route(&self, topic: &str, header: Option<&[u8]>) -> Option<Arc<str>> {
        if !matches!(topic, TELECOM | CARD | CHECKIN) {
            return None;
        }
        let named = header?;
        self.routes
            .iter()
            .find(|(p, _)| p.as_bytes() == named)
            .map(|(_, t)| Arc::clone(t))
    }

    /// [`Self::route`] of a consumed message (its last provider header).
    #[must_use]
    pub fn route_message(&self, m: &OwnedMessage) -> Option<Arc<str>> {
        if self.is_empty() {
            return None;
        }
        let header = m.headers().and_then(|h| {
            h.iter()
                .filter(|h| h.key == PROVIDER_HEADER)
                .last()
                .and_then(|h| h.value)
        });
        self.route(m.topic(), header)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_listed_provider_on_a_feed_is_routed() {
        let routes = ProviderDeadLetters::new(&["telco-a".into(), "card-a".into()]);
        assert_eq!(
            routes.route(TELECOM, Some(b"telco-a")).as_deref(),
            Some("pipeline.deadletter.telco-a")
        );
        assert_eq!(
            routes.route(CARD, Some(b"card-a")).as_deref(),
            Some("pipeline.deadletter.card-a")
        );
        // Unknown, absent, not exactly equal, or not a feed.
        assert_eq!(routes.route(TELECOM, Some(b"telco-b")), None);
        assert_eq!(routes.route(TELECOM, None), None);
        assert_eq!(routes.route(TELECOM, Some(b"telco-a ")), None);
        assert_eq!(routes.route(TELECOM, Some(&[0xff, 0xfe])), None);
        assert_eq!(routes.route("cases.events", Some(b"telco-a")), None);
        assert!(ProviderDeadLetters::new(&[]).is_empty());
    }
}
