//! The scan's fast 128-bit content hash, which only *proposes* pairs of
//! identical members (pairing confirms each byte for byte or by SHA-256).
//!
//! Invariant: the hash depends on the bytes and their length only, never on
//! how they were split into `update` calls.

/// A fast, streaming, chunking-independent 128-bit hash (two multiply-rotate
/// lanes over 16-byte blocks). Not cryptographic: it only proposes pairs.
pub(super) struct FastHash {
    a: u64,
    b: u64,
    len: u64,
    carry: [u8; 16],
    carried: usize,
}

const K1: u64 = 0x9E37_79B9_7F4A_7C15;
const K2: u64 = 0xC2B2_AE3D_27D4_EB4F;

impl FastHash {
    pub(super) fn new() -> Self {
        FastHash {
            a: K1,
            b: K2,
            len: 0,
            carry: [0; 16],
            carried: 0,
        }
    }

    #[inline]
    fn block(&mut self, blk: &[u8]) {
        let x = u64::from_le_bytes(blk[..8].try_into().unwrap());
        let y = u64::from_le_bytes(blk[8..16].try_into().unwrap());
        self.a = (self.a ^ x).wrapping_mul(K1).rotate_left(29);
        self.b = (self.b ^ y).wrapping_mul(K2).rotate_left(31);
    }

    pub(super) fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if self.carried > 0 {
            let n = (16 - self.carried).min(data.len());
            self.carry[self.carried..self.carried + n].copy_from_slice(&data[..n]);
            self.carried += n;
            data = &data[n..];
            if self.carried < 16 {
                return;
            }
            let c = self.carry;
            self.block(&c);
            self.carried = 0;
        }
        let mut blocks = data.chunks_exact(16);
        for blk in &mut blocks {
            self.block(blk);
        }
        let rest = blocks.remainder();
        self.carry[..rest.len()].copy_from_slice(rest);
        self.carried = rest.len();
    }

    pub(super) fn finish(mut self) -> u128 {
        let mut last = [0u8; 16];
        last[..self.carried].copy_from_slice(&self.carry[..self.carried]);
        self.block(&last);
        let fin = |v: u64, l: u64| {
            let mut z = v ^ l;
            z = (z ^ (z >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
            z = (z ^ (z >> 33)).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
            z ^ (z >> 33)
        };
        (u128::from(fin(self.a, self.len)) << 64) | u128::from(fin(self.b ^ self.a, self.len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_hash_ignores_chunking() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 13 % 251) as u8).collect();
        let mut one = FastHash::new();
        one.update(&data);
        let one = one.finish();
        for step in [1, 7, 15, 16, 17, 1000] {
            let mut h = FastHash::new();
            for c in data.chunks(step) {
                h.update(c);
            }
            assert_eq!(h.finish(), one, "step {step}");
        }
        let mut other = FastHash::new();
        other.update(&data[..9_999]);
        assert_ne!(other.finish(), one);
        let mut z1 = FastHash::new();
        z1.update(&[0; 15]);
        let mut z2 = FastHash::new();
        z2.update(&[0; 16]);
        assert_ne!(z1.finish(), z2.finish());
    }
}
