//! Read planning, pure: which requests read a set of tags in as few round trips as the protocol
//! allows.
//!
//! Items (a tag, the handshake block) are grouped per table, sorted by address, and merged into
//! one request while the request stays within the protocol's limit (125 registers for FC 3/4,
//! 2000 bits for FC 1/2, or the configured lower limits) and the unused addresses between two
//! items do not exceed `max_gap`. Reading a few unused registers is cheaper than another round
//! trip; some devices refuse reads that cross unmapped addresses, which `max_gap = 0` avoids.
//! An item is never split over two requests, so one tag's registers are always read together.

use super::address::{Address, Table};

/// The protocol's register limit per read (FC 3 and 4).
pub const MAX_REGISTERS: u16 = 125;
/// The protocol's bit limit per read (FC 1 and 2).
pub const MAX_BITS: u16 = 2000;

/// Limits a plan respects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most registers per read request (1..=125).
    pub max_registers: u16,
    /// Most bits per read request (1..=2000).
    pub max_bits: u16,
    /// Most unused registers bridged between two items; bit tables bridge 16 times as many
    /// bits.
    pub max_gap: u16,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_registers: MAX_REGISTERS,
            max_bits: MAX_BITS,
            max_gap: 0,
        }
    }
}

impl Limits {
    fn max_count(&self, table: Table) -> u32 {
        u32::from(if table.is_bits() {
            self.max_bits
        } else {
            self.max_registers
        })
        .max(1)
    }

    fn gap(&self, table: Table) -> u32 {
        u32::from(self.max_gap) * if table.is_bits() { 16 } else { 1 }
    }
}

/// Something to read: `count` registers (or bits) from `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item {
    pub start: Address,
    pub count: u16,
}

impl Item {
    fn end(&self) -> u32 {
        u32::from(self.start.offset) + u32::from(self.count.max(1))
    }
}

/// One read request and the items it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub table: Table,
    pub start: u16,
    pub count: u16,
    /// Indexes into the planned item list.
    pub items: Vec<usize>,
}

impl Request {
    /// Where item `item`'s values start in this request's response.
    pub fn position(&self, item: &Item) -> usize {
        usize::from(item.start.offset - self.start)
    }
}

/// The requests that read `items`. Every item is covered by exactly one request, in full;
/// requests come in table order, then address order. An item larger than the limit gets a
/// request of its own (validation refuses such configs before they get here).
pub fn plan(items: &[Item], limits: Limits) -> Vec<Request> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| (items[i].start, std::cmp::Reverse(items[i].count)));
    let mut out: Vec<Request> = Vec::new();
    let mut end = 0u32;
    for i in order {
        let item = &items[i];
        let table = item.start.table;
        let start = u32::from(item.start.offset);
        if let Some(current) = out.last_mut().filter(|r| r.table == table) {
            let new_end = end.max(item.end());
            let joins = start <= end + limits.gap(table)
                && new_end - u32::from(current.start) <= limits.max_count(table);
            if joins {
                end = new_end;
                current.count = (end - u32::from(current.start)) as u16;
                current.items.push(i);
                continue;
            }
        }
        end = item.end();
        out.push(Request {
            table,
            start: item.start.offset,
            count: (end - start) as u16,
            items: vec![i],
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hr(offset: u16, count: u16) -> Item {
        Item {
            start: Address::hr(offset),
            count,
        }
    }

    fn item(table: Table, offset: u16, count: u16) -> Item {
        Item {
            start: Address { table, offset },
            count,
        }
    }

    fn spans(requests: &[Request]) -> Vec<(Table, u16, u16)> {
        requests
            .iter()
            .map(|r| (r.table, r.start, r.count))
            .collect()
    }

    const HR: Table = Table::HoldingRegister;

    fn limits(max_gap: u16) -> Limits {
        Limits {
            max_gap,
            ..Limits::default()
        }
    }

    #[test]
    fn adjacent_tags_share_one_request() {
        let items = [hr(0, 1), hr(1, 2), hr(3, 20), hr(23, 10)];
        let p = plan(&items, limits(0));
        assert_eq!(spans(&p), [(HR, 0, 33)]);
        assert_eq!(p[0].items, [0, 1, 2, 3]);
        assert_eq!(p[0].position(&items[2]), 3);
    }

    #[test]
    fn gaps_are_bridged_only_up_to_max_gap() {
        let items = [hr(0, 1), hr(9, 20), hr(40, 2)];
        assert_eq!(
            spans(&plan(&items, limits(0))),
            [(HR, 0, 1), (HR, 9, 20), (HR, 40, 2)]
        );
        assert_eq!(spans(&plan(&items, limits(8))), [(HR, 0, 29), (HR, 40, 2)]);
        assert_eq!(spans(&plan(&items, limits(11))), [(HR, 0, 42)]);
    }

    #[test]
    fn requests_never_exceed_125_registers_and_tags_are_never_split() {
        // 130 adjacent u16 tags: 125 + 5.
        let items: Vec<Item> = (0..130).map(|i| hr(i, 1)).collect();
        assert_eq!(
            spans(&plan(&items, limits(0))),
            [(HR, 0, 125), (HR, 125, 5)]
        );
        // A 20-register string that would cross the limit starts the next request.
        let items = [hr(0, 110), hr(110, 20)];
        assert_eq!(
            spans(&plan(&items, limits(0))),
            [(HR, 0, 110), (HR, 110, 20)]
        );
        // A configured lower limit (devices that take fewer registers per request).
        let small = Limits {
            max_registers: 16,
            ..limits(100)
        };
        let items = [hr(0, 10), hr(10, 6), hr(16, 1)];
        assert_eq!(spans(&plan(&items, small)), [(HR, 0, 16), (HR, 16, 1)]);
    }

    #[test]
    fn bits_use_the_2000_bit_limit_and_a_16x_gap() {
        let items: Vec<Item> = (0..2001).map(|i| item(Table::Coil, i, 1)).collect();
        assert_eq!(
            spans(&plan(&items, limits(0))),
            [(Table::Coil, 0, 2000), (Table::Coil, 2000, 1)]
        );
        let items = [
            item(Table::DiscreteInput, 0, 1),
            item(Table::DiscreteInput, 33, 1),
        ];
        assert_eq!(
            spans(&plan(&items, limits(2))),
            [(Table::DiscreteInput, 0, 34)]
        );
        assert_eq!(plan(&items, limits(1)).len(), 2);
    }

    #[test]
    fn tables_are_never_mixed_and_come_in_order() {
        let items = [
            hr(0, 1),
            item(Table::InputRegister, 0, 1),
            item(Table::Coil, 0, 1),
            item(Table::DiscreteInput, 1, 1),
            hr(1, 1),
        ];
        let p = plan(&items, limits(0));
        assert_eq!(
            spans(&p),
            [
                (Table::Coil, 0, 1),
                (Table::DiscreteInput, 1, 1),
                (Table::InputRegister, 0, 1),
                (HR, 0, 2)
            ]
        );
        assert_eq!(p[3].items, [0, 4]);
    }

    #[test]
    fn overlapping_and_duplicate_items_are_read_once() {
        // A block and tags inside it (the handshake block holds the counter and the code).
        let items = [hr(0, 30), hr(0, 1), hr(9, 20), hr(9, 20), hr(29, 1)];
        let p = plan(&items, limits(0));
        assert_eq!(spans(&p), [(HR, 0, 30)]);
        assert_eq!(p[0].items.len(), 5);
        assert_eq!(p[0].position(&items[2]), 9);
    }

    #[test]
    fn unsorted_input_gives_the_same_plan() {
        let items = [hr(50, 2), hr(0, 1), hr(48, 2), hr(1, 1)];
        assert_eq!(spans(&plan(&items, limits(0))), [(HR, 0, 2), (HR, 48, 4)]);
    }

    #[test]
    fn every_item_is_covered_by_exactly_one_request() {
        let mut seed = 7u32;
        let mut next = move || {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            seed >> 8
        };
        for round in 0..200 {
            let items: Vec<Item> = (0..20)
                .map(|_| hr((next() % 400) as u16, 1 + (next() % 24) as u16))
                .collect();
            let l = limits((round % 5) as u16 * 3);
            let p = plan(&items, l);
            let mut covered = vec![0; items.len()];
            for r in &p {
                assert!(r.count <= 125, "{r:?}");
                for &i in &r.items {
                    covered[i] += 1;
                    assert!(items[i].start.offset >= r.start);
                    assert!(items[i].end() <= u32::from(r.start) + u32::from(r.count));
                }
            }
            assert!(covered.iter().all(|&c| c == 1), "{covered:?}");
        }
    }
}
