//! The children of a tree node, by level text: a short vector while there are few (most nodes of
//! a topic tree have one child), a hash map once there are many. A one-child node then costs one
//! small allocation instead of a hash table's four buckets, which is what made a deep filter cost
//! hundreds of times its size.

use std::collections::HashMap;

/// Above this many children a node switches to a hash map.
const FEW: usize = 8;

/// Children keyed by level text.
#[derive(Debug)]
pub(super) enum Children<N> {
    /// Up to `FEW` children, searched linearly.
    Few(Vec<(Box<str>, N)>),
    /// More children, hashed; boxed so that the common one-child node stays small.
    #[allow(clippy::box_collection)]
    Many(Box<HashMap<Box<str>, N>>),
}

impl<N> Default for Children<N> {
    fn default() -> Self {
        Children::Few(Vec::new())
    }
}

impl<N: Default> Children<N> {
    /// The child named `level`.
    pub(super) fn get(&self, level: &str) -> Option<&N> {
        match self {
            Children::Few(few) => few.iter().find(|(name, _)| &**name == level).map(|(_, node)| node),
            Children::Many(many) => many.get(level),
        }
    }

    /// The child named `level`, mutably.
    pub(super) fn get_mut(&mut self, level: &str) -> Option<&mut N> {
        match self {
            Children::Few(few) => few.iter_mut().find(|(name, _)| &**name == level).map(|(_, node)| node),
            Children::Many(many) => many.get_mut(level),
        }
    }

    /// True if there is a child named `level`.
    pub(super) fn contains(&self, level: &str) -> bool {
        self.get(level).is_some()
    }

    /// The child named `level`, created empty if missing.
    pub(super) fn get_or_default(&mut self, level: &str) -> &mut N {
        if let Children::Few(few) = self {
            if few.len() >= FEW && !few.iter().any(|(name, _)| &**name == level) {
                let map: HashMap<Box<str>, N> = std::mem::take(few).into_iter().collect();
                *self = Children::Many(Box::new(map));
            }
        }
        match self {
            Children::Few(few) => {
                let at = match few.iter().position(|(name, _)| &**name == level) {
                    Some(at) => at,
                    None => {
                        // Grow one at a time: most nodes never have a second child.
                        few.reserve_exact(1);
                        few.push((level.into(), N::default()));
                        few.len() - 1
                    }
                };
                &mut few[at].1
            }
            Children::Many(many) => many.entry(level.into()).or_default(),
        }
    }

    /// Removes the child named `level`.
    pub(super) fn remove(&mut self, level: &str) {
        match self {
            Children::Few(few) => {
                if let Some(at) = few.iter().position(|(name, _)| &**name == level) {
                    few.swap_remove(at);
                    few.shrink_to_fit();
                }
            }
            Children::Many(many) => {
                many.remove(level);
                if many.len() <= FEW / 2 {
                    let few: Vec<(Box<str>, N)> = std::mem::take(&mut **many).into_iter().collect();
                    *self = Children::Few(few);
                }
            }
        }
    }

    /// True when there are no children.
    pub(super) fn is_empty(&self) -> bool {
        match self {
            Children::Few(few) => few.is_empty(),
            Children::Many(many) => many.is_empty(),
        }
    }

    /// Every child with its level text, in no particular order.
    pub(super) fn iter(&self) -> Iter<'_, N> {
        match self {
            Children::Few(few) => Iter::Few(few.iter()),
            Children::Many(many) => Iter::Many(many.iter()),
        }
    }
}

/// An iterator over children, without an allocation per walk.
pub(super) enum Iter<'a, N> {
    /// Over a short vector.
    Few(std::slice::Iter<'a, (Box<str>, N)>),
    /// Over a hash map.
    Many(std::collections::hash_map::Iter<'a, Box<str>, N>),
}

impl<'a, N> Iterator for Iter<'a, N> {
    type Item = (&'a str, &'a N);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Few(few) => few.next().map(|(name, node)| (&**name, node)),
            Iter::Many(many) => many.next().map(|(name, node)| (&**name, node)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switches_to_a_map_and_back_keeping_every_child() {
        let mut children: Children<u32> = Children::default();
        for i in 0..20u32 {
            *children.get_or_default(&i.to_string()) = i;
        }
        assert!(matches!(children, Children::Many(_)));
        assert_eq!(children.get("7"), Some(&7));
        for i in 0..18u32 {
            children.remove(&i.to_string());
        }
        assert!(matches!(children, Children::Few(_)));
        let mut left: Vec<u32> = children.iter().map(|(_, n)| *n).collect();
        left.sort_unstable();
        assert_eq!(left, [18, 19]);
        assert!(children.contains("19") && !children.contains("3"));
    }
}
