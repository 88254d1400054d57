use super::*;
use flate2::Crc;
use std::io::Write;

/// A gzip member with a file name in its header: not sysup's.
fn member(data: &[u8], level: u32) -> Vec<u8> {
    let mut w = flate2::GzBuilder::new()
        .filename("a")
        .write(Vec::new(), flate2::Compression::new(level));
    w.write_all(data).unwrap();
    w.finish().unwrap()
}

fn read_all(z: &[u8], index: Option<Index>) -> io::Result<Vec<u8>> {
    let mut r = Reader::new(z);
    if let Some(i) = index {
        r = r.with_index(i);
    }
    let mut out = Vec::new();
    r.read_to_end(&mut out).map(|_| out)
}

#[test]
fn every_member_is_read_and_only_sysups_are_indexed() {
    let a = crate::util::testdata::noise(1, 100_000);
    let b = vec![b'b'; 70_000];
    // a header with a name is not sysup's: read, not indexed
    let foreign = member(&a, 6);
    let mut ours = HEADER.to_vec();
    ours.extend(super::super::compress_chunk(1, &b, &[], true).unwrap());
    let mut crc = Crc::new();
    crc.update(&b);
    ours.extend(crc.sum().to_le_bytes());
    ours.extend((b.len() as u32).to_le_bytes());
    let mut z = foreign.clone();
    z.extend(&ours);
    let index = Index::default();
    let out = read_all(&z, Some(index.clone())).unwrap();
    assert_eq!(out.len(), a.len() + b.len());
    assert_eq!(&out[..a.len()], &a[..]);
    assert_eq!(&out[a.len()..], &b[..]);
    assert_eq!(index.len(), 1);
    let place = index.find(crc.sum(), b.len() as u64).unwrap();
    assert_eq!(place.offset, foreign.len() as u64);
    assert_eq!(place.len, ours.len() as u64);
    // gunzip agrees
    assert_eq!(flate2_multi(&z), out);
}

fn flate2_multi(z: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(z)
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[test]
fn damage_is_an_error_naming_the_checksum_not_a_panic() {
    let data = crate::util::testdata::noise(2, 50_000);
    let z = member(&data, 1);
    let mut crc = z.clone();
    let n = crc.len();
    crc[n - 6] ^= 1;
    let e = read_all(&crc, None).unwrap_err();
    assert!(e.to_string().contains("checksum"), "{e}");
    assert!(read_all(&z[..z.len() - 3], None).is_err());
    assert!(read_all(&z[..z.len() / 2], None).is_err());
    assert!(read_all(b"", None).is_err());
    let mut junk = z.clone();
    junk.extend_from_slice(b"not gzip");
    assert!(read_all(&junk, None).is_err());
    let mut body = z.clone();
    body[20] ^= 0xff;
    assert!(read_all(&body, None).is_err());
    // every prefix and every single-byte change: an error or the data
    for cut in (0..z.len()).step_by(97) {
        let _ = read_all(&z[..cut], None);
        let mut b = z.clone();
        b[cut] = b[cut].wrapping_add(1);
        if let Ok(out) = read_all(&b, None) {
            assert_eq!(out, data);
        }
    }
}

#[test]
fn headers_with_name_comment_extra_and_crc_are_read() {
    let data = b"hello, members".to_vec();
    let mut z = Vec::new();
    {
        let mut w = flate2::GzBuilder::new()
            .filename("x.tar")
            .comment("c")
            .extra(vec![1, 2, 3])
            .write(&mut z, flate2::Compression::default());
        w.write_all(&data).unwrap();
        w.finish().unwrap();
    }
    let mut two = z.clone();
    two.extend(&z);
    let out = read_all(&two, None).unwrap();
    assert_eq!(out, [data.clone(), data].concat());
}

/// A member as sysup's base writer makes it: the fixed header, one final
/// deflate stream, the trailer.
fn ours(data: &[u8]) -> Vec<u8> {
    let mut z = HEADER.to_vec();
    z.extend(super::super::compress_chunk(1, data, &[], true).unwrap());
    let mut crc = Crc::new();
    crc.update(data);
    z.extend(crc.sum().to_le_bytes());
    z.extend((data.len() as u32).to_le_bytes());
    z
}

#[test]
fn sysups_members_are_inflated_whole_and_big_ones_streamed() {
    // small members, one of exactly HARD_MAX, one bigger (read streaming:
    // it does not fit the buffer of a whole member), an empty one
    let sizes = [100_000, cuts::HARD_MAX, cuts::HARD_MAX + 1, 0, 70_000];
    let parts: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let mut d = crate::util::testdata::noise(10 + i as u64, n / 3);
            d.resize(n, b'a' + i as u8);
            d
        })
        .collect();
    let z: Vec<u8> = parts.iter().flat_map(|p| ours(p)).collect();
    let index = Index::default();
    // read through a reader that gives a few bytes at a time: the window
    // must gather a whole member however the file arrives
    let mut r = Reader::new(Trickle(&z[..], 3001)).with_index(index.clone());
    let mut out = Vec::new();
    r.read_to_end(&mut out).unwrap();
    assert_eq!(out, parts.concat());
    assert_eq!(index.len(), sizes.len());
    let mut at = 0u64;
    for p in &parts {
        let mut crc = Crc::new();
        crc.update(p);
        let place = index.find(crc.sum(), p.len() as u64).unwrap();
        assert_eq!(place.offset, at);
        at += place.len;
    }
    assert_eq!(at, z.len() as u64);
}

/// A reader that gives at most `.1` bytes per call.
struct Trickle<'a>(&'a [u8], usize);

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.0.len().min(buf.len()).min(self.1);
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

#[test]
fn a_damaged_member_of_sysups_is_an_error_whatever_its_trailer_claims() {
    let data = crate::util::testdata::noise(7, 300_000);
    let z = ours(&data);
    let n = z.len();
    let index = Index::default();
    // a wrong CRC, a huge or a small ISIZE: checksum errors, never an
    // allocation of what ISIZE says
    for (at, val) in [(n - 6, 0x01), (n - 1, 0xff), (n - 4, 0x00)] {
        let mut bad = z.clone();
        bad[at] ^= val | 1;
        let e = read_all(&bad, Some(index.clone())).unwrap_err();
        assert!(e.to_string().contains("checksum"), "{e}");
    }
    // cut short, or damaged inside: errors, and nothing recorded
    assert!(read_all(&z[..n - 5], Some(index.clone())).is_err());
    assert!(index.is_empty());
    let mut body = z.clone();
    body[200] ^= 0xff;
    if let Ok(out) = read_all(&body, None) {
        assert_eq!(out, data);
    }
    // a good member then garbage: the garbage is an error
    let mut junk = z.clone();
    junk.extend_from_slice(&HEADER);
    junk.extend_from_slice(&[0xff; 40]);
    assert!(read_all(&junk, None).is_err());
}

#[test]
fn the_callers_buffer_size_changes_nothing_read_held_or_refused() {
    // members smaller and bigger than the room a caller's buffer has, so
    // they go straight into it, into the reader's own buffer after a try,
    // or streamed
    let sizes = [
        30_000,
        DIRECT_MIN,
        DIRECT_MIN + 1,
        0,
        900_000,
        cuts::HARD_MAX + 1,
        5,
    ];
    let parts: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let mut d = crate::util::testdata::noise(20 + i as u64, n / 2);
            d.resize(n, b'k' + i as u8);
            d
        })
        .collect();
    let z: Vec<u8> = parts.iter().flat_map(|p| ours(p)).collect();
    let whole = parts.concat();
    for room in [
        1000,
        DIRECT_MIN - 1,
        DIRECT_MIN,
        DIRECT_MIN + 7,
        1 << 20,
        6 << 20,
    ] {
        let index = Index::default();
        let mut r = Reader::new(&z[..]).with_index(index.clone());
        let mut out = Vec::new();
        let mut buf = vec![0xa5u8; room];
        loop {
            let n = r.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        assert!(out == whole, "room {room}");
        assert_eq!(index.len(), sizes.len(), "room {room}");
        for p in parts.iter().filter(|p| p.len() <= cuts::HARD_MAX) {
            let mut crc = Crc::new();
            crc.update(p);
            let place = index.find(crc.sum(), p.len() as u64).unwrap();
            let held = index.held(place).expect("held");
            assert!(held.content == *p, "room {room}, {} bytes", p.len());
        }
        // a damaged member is refused whatever the room
        let mut bad = z.clone();
        let last_crc = bad.len() - 8;
        bad[last_crc] ^= 1;
        let mut r = Reader::new(&bad[..]);
        let err = loop {
            match r.read(&mut buf) {
                Ok(0) => panic!("room {room}: damage not seen"),
                Ok(_) => {}
                Err(e) => break e,
            }
        };
        assert!(err.to_string().contains("checksum"), "{err}");
    }
}
