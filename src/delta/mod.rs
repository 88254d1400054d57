//! Binary patches between uncompressed dist tars (DESIGN §3). (Being written.)
