//! Positions, accuracy radii and H3 cells.

use std::fmt;

use h3o::{CellIndex, LatLng as H3LatLng, Resolution};

use crate::error::ModelError;

/// A WGS84 position, checked finite and in range.
#[derive(Clone, Copy, Debug)]
pub struct LatLng {
    lat: f64,
    lng: f64,
    /// The same position as h3o holds it (radians), built once at validation.
    h3: H3LatLng,
}

impl PartialEq for LatLng {
    fn eq(&self, other: &Self) -> bool {
        self.lat == other.lat && self.lng == other.lng
    }
}

impl LatLng {
    /// Validates degrees of latitude and longitude.
    ///
    /// # Errors
    /// [`ModelError::InvalidLatitude`] / [`ModelError::InvalidLongitude`] for
    /// NaN, infinities and out-of-range values.
    pub fn new(lat: f64, lng: f64) -> Result<Self, ModelError> {
        if !(-90.0..=90.0).contains(&lat) {
            return Err(ModelError::InvalidLatitude(lat));
        }
        if !(-180.0..=180.0).contains(&lng) {
            return Err(ModelError::InvalidLongitude(lng));
        }
        let h3 = H3LatLng::new(lat, lng).map_err(|_| ModelError::InvalidLatitude(lat))?;
        Ok(Self { lat, lng, h3 })
    }

    /// Latitude in degrees.
    #[must_use]
    pub const fn lat(self) -> f64 {
        self.lat
    }

    /// Longitude in degrees.
    #[must_use]
    pub const fn lng(self) -> f64 {
        self.lng
    }

    /// The great-circle distance to `other`, in metres.
    #[must_use]
    pub fn distance_m(self, other: Self) -> f64 {
        self.h3.distance_m(other.h3)
    }

    /// The H3 cell at `res` containing this position.
    #[must_use]
    pub fn to_cell(self, res: Resolution) -> Cell {
        Cell(self.h3.to_cell(res))
    }
}

/// Radius in metres within which a position is believed to lie (the
/// provider's stated accuracy: a tower's coverage, a GPS fix's error).
#[derive(Clone, Copy, PartialEq, PartialOrd, Debug)]
pub struct AccuracyM(f64);

impl AccuracyM {
    /// Largest accepted radius (100 km); anything larger is not a location.
    pub const MAX: f64 = 100_000.0;

    /// Validates a radius in metres.
    ///
    /// # Errors
    /// [`ModelError::InvalidAccuracy`] for NaN, infinities, negatives and
    /// values above [`Self::MAX`].
    pub fn new(metres: f64) -> Result<Self, ModelError> {
        if !(0.0..=Self::MAX).contains(&metres) {
            return Err(ModelError::InvalidAccuracy(metres));
        }
        Ok(Self(metres))
    }

    /// The radius in metres.
    #[must_use]
    pub const fn metres(self) -> f64 {
        self.0
    }
}

/// An H3 cell: the footprint of an observation or a segment.
///
/// Wraps h3o's [`CellIndex`], which is valid by construction.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cell(CellIndex);

impl Cell {
    /// Validates a raw 64-bit H3 index.
    ///
    /// # Errors
    /// [`ModelError::InvalidCell`] unless `raw` is a valid H3 cell index.
    pub fn new(raw: u64) -> Result<Self, ModelError> {
        CellIndex::try_from(raw)
            .map(Self)
            .map_err(|_| ModelError::InvalidCell(raw))
    }

    /// The raw 64-bit index.
    #[must_use]
    pub fn raw(self) -> u64 {
        u64::from(self.0)
    }

    /// The h3o cell.
    #[must_use]
    pub const fn index(self) -> CellIndex {
        self.0
    }

    /// The cell's resolution.
    #[must_use]
    pub fn resolution(self) -> Resolution {
        self.0.resolution()
    }

    /// The ancestor (or the cell itself) at `res`; `None` when `res` is finer
    /// than this cell.
    #[must_use]
    pub fn parent(self, res: Resolution) -> Option<Self> {
        self.0.parent(res).map(Self)
    }

    /// Whether `other` is this cell or one of its descendants.
    #[must_use]
    pub fn contains(self, other: Self) -> bool {
        other.parent(self.resolution()) == Some(self)
    }

    /// Whether the two footprints are co-located: one equals or contains the
    /// other (DESIGN §4).
    #[must_use]
    pub fn co_located(self, other: Self) -> bool {
        self.contains(other) || other.contains(self)
    }

    /// The cell's centre.
    #[must_use]
    pub fn center(self) -> LatLng {
        let h3 = H3LatLng::from(self.0);
        LatLng {
            lat: h3.lat(),
            lng: h3.lng(),
            h3,
        }
    }
}

impl From<CellIndex> for Cell {
    fn from(index: CellIndex) -> Self {
        Self(index)
    }
}

impl fmt::Debug for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cell({})", self.0)
    }
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latlng_rejects_nan_and_range() {
        assert_eq!(
            LatLng::new(f64::NAN, 0.0).unwrap_err().reason_code(),
            "invalid_latitude"
        );
        assert!(LatLng::new(0.0, f64::INFINITY).is_err());
        assert!(LatLng::new(90.5, 0.0).is_err());
        assert!(LatLng::new(0.0, -180.5).is_err());
        assert!(LatLng::new(37.5344, 126.9946).is_ok());
    }

    #[test]
    fn accuracy_rejects_negative_and_nan() {
        assert!(AccuracyM::new(-1.0).is_err());
        assert!(AccuracyM::new(f64::NAN).is_err());
        assert!(AccuracyM::new(0.0).is_ok());
    }

    #[test]
    fn cells_validate_and_nest() {
        assert!(Cell::new(0).is_err());
        assert!(Cell::new(u64::MAX).is_err());
        let p = LatLng::new(37.5344, 126.9946).unwrap();
        let fine = p.to_cell(Resolution::Ten);
        let coarse = p.to_cell(Resolution::Seven);
        assert!(coarse.contains(fine));
        assert!(!fine.contains(coarse));
        assert!(fine.co_located(coarse) && coarse.co_located(fine));
        assert_eq!(Cell::new(fine.raw()).unwrap(), fine);
    }
}
