//! Cell keys against h3o's own hierarchy: a cell's descendant range holds
//! exactly its descendants, ancestors are h3o's parents, keys round-trip.

// Helpers outside #[test] fns may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use epitrace_core::CellKey;
use epitrace_model::{Cell, LatLng};
use h3o::Resolution;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

fn res(r: u8) -> Resolution {
    Resolution::try_from(r).unwrap()
}

prop_compose! {
    fn any_cell()(lat in -89.9f64..89.9, lng in -179.9f64..179.9, r in 0u8..=15) -> Cell {
        LatLng::new(lat, lng).unwrap().to_cell(res(r))
    }
}

/// A random descendant of `cell`, 0..=5 levels finer.
fn descendant(cell: Cell, levels: u8, pick: u64) -> Cell {
    let r = cell.index().resolution();
    let target = res((u8::from(r) + levels).min(15));
    let count = cell.index().children_count(target);
    Cell::from(cell.index().child_at(pick % count, target).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/proptest-regressions/cellkey_props.txt",
        ))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn descendants_are_in_range(cell in any_cell(), levels in 0u8..=5, pick in any::<u64>()) {
        let child = descendant(cell, levels, pick);
        let key = CellKey::from_cell(cell);
        let child_key = CellKey::from_cell(child);
        prop_assert!(key.descendants().contains(&child_key));
        prop_assert!(key.contains(child_key));
        prop_assert_eq!(child_key.ancestor(u8::from(cell.resolution())), Some(key));
    }

    #[test]
    fn range_membership_is_exactly_h3o_containment(
        cell in any_cell(), up in 1u8..=3, levels in 0u8..=6, pick in any::<u64>()
    ) {
        // A cell near `cell`: a descendant of one of its ancestors, so that
        // both outcomes are common.
        let r = u8::from(cell.resolution());
        let ancestor = cell.parent(res(r.saturating_sub(up))).unwrap();
        let other = descendant(ancestor, levels, pick);
        let by_h3o = other.parent(cell.resolution()) == Some(cell);
        let key = CellKey::from_cell(cell);
        prop_assert_eq!(key.contains(CellKey::from_cell(other)), by_h3o);
        prop_assert_eq!(cell.contains(other), by_h3o);
    }

    #[test]
    fn ancestors_are_h3o_parents(cell in any_cell(), min_res in 0u8..=15) {
        let r = u8::from(cell.resolution());
        let key = CellKey::from_cell(cell);
        let expected: Vec<CellKey> = (min_res..r)
            .rev()
            .map(|p| CellKey::from_cell(cell.parent(res(p)).unwrap()))
            .collect();
        prop_assert_eq!(key.ancestors(min_res).collect::<Vec<_>>(), expected);
    }

    #[test]
    fn keys_round_trip_and_sort_as_bytes(a in any_cell(), b in any_cell()) {
        let (ka, kb) = (CellKey::from_cell(a), CellKey::from_cell(b));
        prop_assert_eq!(ka.to_cell().unwrap(), a);
        prop_assert_eq!(ka.resolution(), u8::from(a.resolution()));
        prop_assert_eq!(CellKey::from_be_bytes(ka.to_be_bytes()).unwrap(), ka);
        prop_assert_eq!(ka.cmp(&kb), ka.to_be_bytes().cmp(&kb.to_be_bytes()));
        prop_assert_eq!(ka == kb, a == b);
    }
}

#[test]
fn corrupt_keys_are_errors() {
    assert!(CellKey::from_be_bytes([0xff; 8]).is_err());
    // Base cell 127 does not exist.
    let bogus = CellKey::from_be_bytes((127u64 << 45 | ((1 << 45) - 1)).to_be_bytes()).unwrap();
    assert!(bogus.to_cell().is_err());
}
