//! The importer's own threads.

/// The stack of the importer's own threads: a mapping runs in jaq, which recurses once a level
/// of the program and of the record; the limits on both (`mapping/shape.rs`) are set well
/// within 2 MiB for an optimised build, and an unoptimised one takes several times more.
/// Reserved, not committed: only the pages a thread touches are used.
pub(crate) const THREAD_STACK: usize = 64 << 20;

/// A thread of the importer's own, named `name`, with [`THREAD_STACK`].
pub(crate) fn sized(name: &str) -> std::thread::Builder {
    std::thread::Builder::new().name(name.to_owned()).stack_size(THREAD_STACK)
}
