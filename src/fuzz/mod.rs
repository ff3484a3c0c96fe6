//! Bad input, by fuzzing: every decoder of bytes walvault did not write itself in this process
//! (objects from the repository, descriptors, the replication protocol, tar data, WAL names and
//! headers, connection strings, configuration files) gets valid inputs mutated at random, a
//! fixed number of cases per target so CI time stays bounded. Each target asserts no panic, an
//! error rather than wrong output, and a peak allocation per input bounded by a small multiple
//! of its size plus fixed buffers (counted by a test-only global allocator, [`alloc`]). The
//! seed is printed; `WALVAULT_TEST_SEED` repeats a run.
//!
//! - `alloc`: the counting allocator.
//! - `mutate`: the mutations and the loop each target runs.
//! - `object`, `descriptor`, `tar`, `wal`, `config`: the targets on public decoders; the replication
//!   protocol, connection strings and passfiles are fuzzed in `replication::fuzz`, beside the
//!   private modules they reach.

pub(crate) mod alloc;
pub(crate) mod mutate;

mod config;
mod descriptor;
mod object;
mod tar;
mod wal;
