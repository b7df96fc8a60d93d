//! Shared by the benches (`#[path]`-included: benches share no crate).

use rapport_core::{Position, Store};

/// Reads `store`'s whole log through `read_all`, 4,096 events a page (owned events, as a
/// subscription or a paged reader gets them); how many it held.
pub(crate) fn read_all_pages<S: Store>(store: &S) -> usize {
    let mut next = Position(1);
    let mut seen = 0;
    loop {
        let page = pollster::block_on(store.read_all(next, 4_096)).expect("read");
        let Some(last) = page.last() else { break };
        next = last.position.next();
        seen += page.len();
    }
    seen
}
