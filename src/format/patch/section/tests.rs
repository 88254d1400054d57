//! Tests of the body sections: both codecs round-trip exactly, and a
//! section that decodes short, long or not at all fails alike whether it is
//! decoded inline or on a thread of its own.

use super::*;

#[test]
fn both_codecs_round_trip_exactly() {
    let raw: Vec<u8> = (0..3_000_000u32)
        .map(|i| if i % 7 == 0 { (i % 251) as u8 } else { 0xE8 })
        .collect();
    for (codec, level) in [(Compression::Xz, 6), (Compression::Zstd, 3)] {
        for kind in SectionKind::ALL {
            let params = Params { codec, level };
            let mut w = SectionWriter::spawn(kind, params).unwrap();
            for piece in raw.chunks(77_777) {
                w.write_all(piece).unwrap();
            }
            let mut c = w.finish().unwrap();
            assert_eq!(c.raw_len, raw.len() as u64);
            let mut out = Vec::new();
            c.file.seek(SeekFrom::Start(0)).unwrap();
            c.file.read_to_end(&mut out).unwrap();
            assert_eq!(c.len, out.len() as u64);
            assert_eq!(c.sha256[..], Sha256::digest(&out)[..]);
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("p");
            std::fs::write(&p, &out).unwrap();
            let s = Section {
                kind,
                offset: 0,
                len: c.len,
                raw_len: raw.len() as u64,
                sha256: c.sha256,
            };
            let mut r = SectionReader::open(&p, &s, codec, params.window_log()).unwrap();
            let mut back = Vec::new();
            r.read_into(&mut back, raw.len()).unwrap();
            assert!(back == raw, "{codec:?} {kind:?}");
            r.finish().unwrap();
            assert!(r.read_into(&mut back, 1).is_err());
        }
    }
}

/// A section that decodes short, long or not at all is reported the same
/// whether it is decoded inline or on a thread of its own.
#[test]
fn bad_sections_fail_alike_inline_and_ahead() {
    for n in [(AHEAD_MIN / 2) as u32, 3 * AHEAD_MIN as u32] {
        let raw: Vec<u8> = (0..n)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        let params = Params {
            codec: Compression::Xz,
            level: 1,
        };
        let mut w = SectionWriter::spawn(SectionKind::Extra, params).unwrap();
        w.write_all(&raw).unwrap();
        let mut c = w.finish().unwrap();
        let mut body = Vec::new();
        c.file.seek(SeekFrom::Start(0)).unwrap();
        c.file.read_to_end(&mut body).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let read = |body: &[u8], raw_len: u64| {
            let p = dir.path().join("p");
            std::fs::write(&p, body).unwrap();
            let s = Section {
                kind: SectionKind::Extra,
                offset: 0,
                len: body.len() as u64,
                raw_len,
                sha256: Sha256::digest(body),
            };
            let mut r = SectionReader::open(&p, &s, Compression::Xz, params.window_log())?;
            let mut back = Vec::new();
            r.read_into(&mut back, raw_len as usize)?;
            assert!(back[..] == raw[..raw_len as usize], "n = {n}");
            r.finish()
        };
        let n = u64::from(n);
        read(&body, n).unwrap();
        let short = read(&body, n + 1).unwrap_err().to_string();
        assert!(short.contains("decompresses to fewer bytes"), "{short}");
        let long = read(&body, n - 1).unwrap_err().to_string();
        assert!(long.contains("decompresses to more bytes"), "{long}");
        let mut bad = body.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 0x55;
        let err = read(&bad, n).unwrap_err();
        assert!(matches!(err, Error::CorruptPatch { .. }), "n = {n}: {err}");
        assert!(err.to_string().contains("extra section"), "{err}");
    }
}
