//! Deterministic test inputs for the library's unit tests (the fixture trees
//! of the integration tests and the demo are the binary's, `src/cli/fixtures.rs`).

/// `len` deterministic, incompressible bytes for `seed`: SHA-256 of
/// (seed, block number), block after block.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut block = 0u64;
    while out.len() < len {
        let input = [seed.to_le_bytes(), block.to_le_bytes()].concat();
        out.extend_from_slice(&crate::util::digest::Sha256::digest(&input));
        block += 1;
    }
    out.truncate(len);
    out
}

/// `n` words of deterministic, compressible text for `seed`, each drawn
/// from six by a linear congruential generator.
pub fn words(n: usize, seed: u32) -> Vec<u8> {
    let words = ["alpha ", "beta ", "gamma\n", "delta ", "epsilon ", "zeta\n"];
    let mut x = seed;
    (0..n)
        .flat_map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            words[(x >> 16) as usize % words.len()].bytes()
        })
        .collect()
}
