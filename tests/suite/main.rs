//! sysup's integration tests: one binary (linking the library and its
//! dependencies once, not once per file), one module per behaviour or
//! threat. Each module drives the real `sysup` binary over temporary roots;
//! the `*_support` modules and `common` hold the shared set-up.
//!
//! Run one area with a filter: `cargo test --test suite hostile_` or one
//! file's tests with `cargo test --test suite mirror_resume::`.

mod common;
mod hostile_support;
mod mirror_support;
mod patch_support;
mod systemd_support;

/// The demo's fixture trees, as the crash soak's harness (shared with
/// `bench/crash-soak`) names them: `crate::fixtures`.
use common::fixtures;

mod admin_messages;
mod apply_attrs_in_place;
mod apply_chain;
mod apply_crash;
mod base_compression;
mod base_writer_crash;
mod build_bad_input;
mod build_dist;
mod build_warnings;
mod closed_stdout;
mod concurrent_apply;
mod config_merge;
mod corrupt_input;
mod crash_soak;
mod demo;
mod diff_identical_files;
mod disk_full;
mod dist_tar_record;
mod dry_run_preview;
mod fleet_ansible;
mod fuzz_regressions;
mod history_config_resolve;
mod host_conf;
mod hostile_attr_links;
mod hostile_device_nodes;
mod hostile_dir_becomes_link;
mod hostile_duplicate_members;
mod hostile_gzip_bomb;
mod hostile_huge_sizes;
mod hostile_kernel_dirs;
mod hostile_manifest_shapes;
mod hostile_names;
mod hostile_obsolete_state;
mod hostile_outer_dirs;
mod hostile_patch_bomb;
mod hostile_same_size_replacement;
mod hostile_state_links;
mod hostile_symlink_escape;
mod hostile_xattrs;
mod interrupt;
mod io_faults;
mod journal_relative;
mod kernel_chain;
mod lifecycle;
mod many_directories;
mod mirror_chain;
mod mirror_crash;
mod mirror_down;
mod mirror_expiry;
mod mirror_forged_signature;
mod mirror_header_mismatch;
mod mirror_key_rotation;
mod mirror_local;
mod mirror_minisign;
mod mirror_proxy_cache;
mod mirror_pubkey_path;
mod mirror_publish;
mod mirror_resume;
mod mirror_serial_per_key;
mod mirror_slow;
mod mirror_stale_index;
mod mirror_truncated;
mod mirror_unsigned;
mod mirror_wrong_file;
mod mount_points;
mod patch_compressed_members;
mod patch_corrupt;
mod patch_elf;
mod patch_elf_aarch64;
mod patch_file_input;
mod patch_pipeline;
mod patch_roundtrip;
mod patch_write_error;
mod patch_wrong_base;
mod patch_zip_members;
mod pending_apply;
mod presentation;
mod read_only_root;
mod restart_report;
mod setuid_hardlink;
mod shipped_specs;
mod status_keys;
mod status_prometheus;
mod systemd_boot;
mod systemd_units;
mod target_path_safety;
mod update_check;
mod update_report;
mod upgrade_confined;
mod verify_drift;
mod wrong_base;
mod xattr_ownership;
