use super::*;
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
