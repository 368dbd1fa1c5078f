//! Size limits, checked with typed errors before anything is allocated.
//!
//! Every length that comes from a caller or from disk is compared against one
//! of these constants first; FORMAT.md lists which limit guards which field.

/// Largest key, in bytes.
pub const KEY_SIZE_MAX: usize = 64 * 1024;
/// Largest value, in bytes.
pub const VALUE_SIZE_MAX: usize = 64 * 1024 * 1024;
/// Longest table name, in bytes of UTF-8.
pub const TABLE_NAME_SIZE_MAX: usize = 255;
/// Largest encoded transaction metadata map, in bytes.
pub const META_SIZE_MAX: usize = 64 * 1024;
/// Largest encoded transaction (one log frame payload), in bytes.
pub const TX_SIZE_MAX: usize = 1024 * 1024 * 1024;
/// Largest segment roll size a [`Config`](crate::Config) may ask for.
pub const SEGMENT_ROLL_SIZE_MAX: u64 = 2 * 1024 * 1024 * 1024;
/// Smallest segment roll size a [`Config`](crate::Config) may ask for.
pub const SEGMENT_ROLL_SIZE_MIN: u64 = 4 * 1024;
/// Smallest history-run block target (`Config::run_block_bytes`; tests use
/// tiny blocks so that keys span several).
pub const BLOCK_TARGET_SIZE_MIN: usize = 64;
/// Largest history-run block target.
pub const BLOCK_TARGET_SIZE_MAX: usize = 16 * 1024 * 1024;
/// Most block-index entries per history-run index page
/// (`Config::run_index_page_entries`).
pub const INDEX_PAGE_ENTRIES_MAX: u32 = 4096;
/// Smallest [`Config::memory_budget`](crate::Config::memory_budget).
pub const MEMORY_BUDGET_MIN: usize = 4 * 1024 * 1024;

/// A segment never grows past this: the roll size plus one maximal frame.
/// Value offsets inside a segment are stored as `u32`, so this must fit.
pub(crate) const SEGMENT_SIZE_MAX: u64 = SEGMENT_ROLL_SIZE_MAX + TX_SIZE_MAX as u64 + 64;

const _: () = assert!(SEGMENT_SIZE_MAX <= u32::MAX as u64);
const _: () = assert!(KEY_SIZE_MAX <= u32::MAX as usize);
const _: () = assert!(VALUE_SIZE_MAX < TX_SIZE_MAX);
const _: () = assert!(META_SIZE_MAX < TX_SIZE_MAX);
const _: () = assert!(TABLE_NAME_SIZE_MAX <= u8::MAX as usize);
const _: () = assert!(SEGMENT_ROLL_SIZE_MIN < SEGMENT_ROLL_SIZE_MAX);
