//! Forward-only raw tar segmenter (being written).
