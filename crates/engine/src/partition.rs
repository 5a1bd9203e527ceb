//! The Java client's default partitioner for keyed records:
//! `toPositive(murmur2(key)) % partitions`, which librdkafka's
//! `murmur2_random` partitioner reproduces. Co-partitioning of topics
//! written by different producers depends on every producer using it.

/// Kafka's `Utils.murmur2` (seed `0x9747b28c`).
#[must_use]
#[allow(clippy::cast_possible_wrap, clippy::cast_possible_truncation)] // bit-exact port
pub fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = 0x9747_b28c ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if let Some(&b) = rest.first() {
        h ^= u32::from(b);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition of `key` among `partitions` (at least 1).
#[must_use]
#[allow(clippy::cast_sign_loss, clippy::cast_possible_wrap)] // masked to 31 bits
pub fn partition_for(key: &[u8], partitions: i32) -> i32 {
    let positive = (murmur2(key) & 0x7fff_ffff) as u32;
    (positive % partitions.max(1) as u32) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafkas_utils() {
        // Values of org.apache.kafka.common.utils.Utils.murmur2.
        for (key, want) in [
            ("1", -1_993_445_489),
            ("12", 126_087_238),
            ("123", -267_702_483),
            ("1234", -1_614_185_708),
            ("12345", -1_188_365_604),
        ] {
            assert_eq!(murmur2(key.as_bytes()), want, "{key}");
        }
    }

    #[test]
    fn partitions_are_within_range() {
        for i in 0..1000u32 {
            let p = partition_for(&i.to_be_bytes(), 4);
            assert!((0..4).contains(&p));
        }
        assert_eq!(partition_for(b"anything", 1), 0);
    }
}
