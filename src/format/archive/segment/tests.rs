//! Tests of the segmenter: exact reassembly of every byte, the trailer, and
//! the refusal of damaged, truncated, absurd and garbage input.

use super::*;
use std::io::Write;

/// Segment `tar` and concatenate everything back.
fn reassemble(tar: &[u8]) -> Result<(Vec<u8>, Vec<Member>)> {
    let mut seg = Segmenter::new(tar, "<test>").with_limit(tar.len() as u64);
    let mut out = Vec::new();
    let mut members = Vec::new();
    while let Some(item) = seg.next_item()? {
        match item {
            Item::Member(m) => {
                out.extend_from_slice(&m.header);
                io::copy(&mut seg.data(), &mut out).unwrap();
                out.extend_from_slice(&seg.finish_member()?);
                members.push(m);
            }
            Item::Trailer(t) => out.extend_from_slice(&t),
        }
    }
    Ok((out, members))
}

fn build_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(5);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "short.txt", &b"hello"[..]).unwrap();
    let long = format!("{}/file", "d".repeat(150));
    let mut h = tar::Header::new_gnu();
    h.set_size(1000);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, &long, &vec![7u8; 1000][..]).unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_size(0);
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_cksum();
    b.append_data(&mut h, "dir/", io::empty()).unwrap();
    // A PAX member with a long path and an xattr.
    let mut h = tar::Header::new_ustar();
    h.set_size(3);
    h.set_mode(0o4755);
    let pax_path = format!("{}/pax", "p".repeat(200));
    b.append_pax_extensions([
        ("path", pax_path.as_bytes()),
        ("SCHILY.xattr.security.capability", &[1u8, 0, 0, 2][..]),
    ])
    .unwrap();
    h.set_path("short-pax").unwrap();
    h.set_cksum();
    b.append(&h, &b"abc"[..]).unwrap();
    b.into_inner().unwrap()
}

#[test]
fn reassembles_exactly_and_reads_paths() {
    let mut tar = build_tar();
    // Record padding beyond the two zero blocks, as GNU tar writes.
    tar.resize(tar.len() + 10240 - tar.len() % 10240, 0);
    let (out, members) = reassemble(&tar).unwrap();
    assert_eq!(out, tar);
    let paths: Vec<String> = members
        .iter()
        .map(|m| String::from_utf8_lossy(&m.path).into_owned())
        .collect();
    assert_eq!(paths[0], "short.txt");
    assert_eq!(paths[1], format!("{}/file", "d".repeat(150)));
    assert_eq!(paths[2], "dir/");
    assert_eq!(paths[3], format!("{}/pax", "p".repeat(200)));
    assert_eq!(members[1].size, 1000);
    assert!(members[3].is_file());
    assert!(members[3].header.len() >= 3 * BLOCK);
    assert_eq!(members[2].typeflag, b'5');
}

#[test]
fn missing_end_blocks_give_an_empty_trailer() {
    let tar = build_tar();
    let cut = {
        let (_, m) = reassemble(&tar).unwrap();
        m.last().unwrap().end() as usize
    };
    let (out, _) = reassemble(&tar[..cut]).unwrap();
    assert_eq!(out, &tar[..cut]);
}

#[test]
fn flipped_header_byte_is_a_checksum_error() {
    let mut tar = build_tar();
    tar[3] ^= 0x40;
    let e = reassemble(&tar).unwrap_err().to_string();
    assert!(e.contains("checksum"), "{e}");
}

#[test]
fn truncation_is_an_error_everywhere() {
    let tar = build_tar();
    let (_, members) = reassemble(&tar).unwrap();
    let end = members.last().unwrap().end() as usize;
    for cut in (1..end).filter(|c| c % 97 == 0 || c % BLOCK == 0) {
        let r = reassemble(&tar[..cut]);
        let at_boundary = members.iter().any(|m| m.end() as usize == cut);
        if at_boundary {
            assert_eq!(r.unwrap().0, &tar[..cut]);
        } else {
            assert!(r.is_err(), "cut at {cut} accepted");
        }
    }
}

fn header_with_size(size_field: &[u8], typeflag: u8) -> Vec<u8> {
    let mut block = [0u8; BLOCK];
    block[..4].copy_from_slice(b"evil");
    block[124..124 + size_field.len()].copy_from_slice(size_field);
    block[156] = typeflag;
    block[257..263].copy_from_slice(b"ustar\0");
    block[148..156].fill(b' ');
    let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
    let ck = format!("{sum:06o}\0 ");
    block[148..156].copy_from_slice(ck.as_bytes());
    block.to_vec()
}

#[test]
fn absurd_sizes_are_refused_before_reading() {
    // 8 GiB of data declared in a 512-byte stream with a known length.
    let tar = header_with_size(b"77777777777", b'0');
    let e = reassemble(&tar).unwrap_err().to_string();
    assert!(e.contains("past the stream"), "{e}");
    // A 1 GiB PAX header.
    let tar = header_with_size(b"10000000000", b'x');
    let mut seg = Segmenter::new(&tar[..], "<t>");
    let e = seg.next_item().unwrap_err().to_string();
    assert!(e.contains("extension header"), "{e}");
    // Base-256 size above 1 TiB, no declared length.
    let mut f = [0u8; 12];
    f[0] = 0x80;
    f[5] = 0x7f;
    let tar = header_with_size(&f, b'0');
    let mut seg = Segmenter::new(&tar[..], "<t>");
    let e = seg.next_item().unwrap_err().to_string();
    assert!(e.contains("1 TiB"), "{e}");
}

#[test]
fn pax_size_overrides_ustar_size() {
    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions([("size", &b"600"[..])]).unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_size(600);
    h.set_path("f").unwrap();
    h.set_cksum();
    b.append(&h, &vec![1u8; 600][..]).unwrap();
    let tar = b.into_inner().unwrap();
    let (out, members) = reassemble(&tar).unwrap();
    assert_eq!(out, tar);
    assert_eq!(members[0].size, 600);
}

#[test]
fn garbage_is_refused() {
    let mut junk = Vec::new();
    for i in 0..4096u32 {
        junk.write_all(&[(i * 31 % 251) as u8]).unwrap();
    }
    assert!(reassemble(&junk).is_err());
}
