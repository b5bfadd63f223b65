//! Reading a planned set of items and taking their values out of the replies.

use std::collections::BTreeMap;

use super::client::{Link, Op, Reply, RequestError};
use super::codec::Value;
use super::config::TagConfig;
use super::plan::{Item, Limits, Request, plan};

/// A fixed set of items and the requests that read them.
#[derive(Debug, Clone)]
pub(crate) struct Reads {
    items: Vec<Item>,
    requests: Vec<Request>,
    /// For each item: its request and its position in that request's reply.
    index: Vec<(usize, usize)>,
}

impl Reads {
    pub fn new(items: Vec<Item>, limits: Limits) -> Reads {
        let requests = plan(&items, limits);
        let mut index = vec![(0, 0); items.len()];
        for (r, request) in requests.iter().enumerate() {
            for &i in &request.items {
                index[i] = (r, request.position(&items[i]));
            }
        }
        Reads {
            items,
            requests,
            index,
        }
    }

    /// Performs every request, in order.
    pub async fn read(&self, link: &mut Link) -> Result<Snapshot<'_>, RequestError> {
        let mut replies = Vec::with_capacity(self.requests.len());
        for r in &self.requests {
            let op = Op::Read {
                table: r.table,
                start: r.start,
                count: r.count,
            };
            replies.push(link.call(op).await?);
        }
        Ok(Snapshot {
            reads: self,
            replies,
        })
    }
}

/// The replies of one [`Reads::read`].
#[derive(Debug)]
pub(crate) struct Snapshot<'a> {
    reads: &'a Reads,
    replies: Vec<Reply>,
}

impl Snapshot<'_> {
    /// The registers of item `i` (empty for a bit item).
    pub fn words(&self, i: usize) -> &[u16] {
        let (r, at) = self.reads.index[i];
        match &self.replies[r] {
            Reply::Words(words) => {
                let n = usize::from(self.reads.items[i].count);
                words.get(at..at + n).unwrap_or(&[])
            }
            _ => &[],
        }
    }

    /// The bit of item `i` (false for a register item).
    pub fn bit(&self, i: usize) -> bool {
        let (r, at) = self.reads.index[i];
        match &self.replies[r] {
            Reply::Bits(bits) => bits.get(at).copied().unwrap_or(false),
            _ => false,
        }
    }

    /// The value of `tag`, which is item `i`.
    pub fn value(&self, tag: &TagConfig, i: usize) -> Value {
        if tag.address.table.is_bits() {
            Value::Bool(self.bit(i))
        } else {
            tag.decoding().registers(self.words(i))
        }
    }

    /// Every tag's value as an attribute, the tags being items `first..` in order.
    pub fn attributes(&self, tags: &[TagConfig], first: usize) -> BTreeMap<String, String> {
        tags.iter()
            .enumerate()
            .map(|(k, tag)| (tag.name.clone(), self.value(tag, first + k).to_string()))
            .collect()
    }
}
