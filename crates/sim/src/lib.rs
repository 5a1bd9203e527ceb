//! # epitrace-sim
//!
//! Role: a seeded synthetic city (residents, homes, workplaces, venues, daily
//! schedules, an infection process) that writes realistic provider feeds —
//! telecom location records, card payments, venue check-ins, case events —
//! together with their ground truth (true contacts, transmission tree,
//! clusters), so that epitrace's accuracy can be scored.
//!
//! It is deliberately empty until the simulator issue fills it: nothing here
//! is a stub.
