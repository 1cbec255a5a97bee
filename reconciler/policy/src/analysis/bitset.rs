//! A fixed-size bit set over endpoint classes.

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bitset {
    words: Vec<u64>,
    len: usize,
}

impl Bitset {
    pub fn empty(len: usize) -> Self {
        Bitset { words: vec![0; len.div_ceil(64)], len }
    }

    pub fn full(len: usize) -> Self {
        let mut b = Bitset { words: vec![!0; len.div_ceil(64)], len };
        b.trim();
        b
    }

    fn trim(&mut self) {
        let extra = self.words.len() * 64 - self.len;
        if extra > 0 {
            if let Some(last) = self.words.last_mut() {
                *last &= !0u64 >> extra;
            }
        }
    }

    pub fn clear(&mut self) {
        self.words.iter_mut().for_each(|w| *w = 0);
    }

    pub fn copy_from(&mut self, o: &Bitset) {
        self.words.copy_from_slice(&o.words);
    }

    pub fn set(&mut self, i: usize) {
        self.words[i / 64] |= 1 << (i % 64);
    }

    pub fn has(&self, i: usize) -> bool {
        self.words[i / 64] & (1 << (i % 64)) != 0
    }

    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|w| *w == 0)
    }

    pub fn or(&mut self, o: &Bitset) {
        self.words.iter_mut().zip(&o.words).for_each(|(a, b)| *a |= b);
    }

    pub fn and(&mut self, o: &Bitset) {
        self.words.iter_mut().zip(&o.words).for_each(|(a, b)| *a &= b);
    }

    pub fn and_not(&mut self, o: &Bitset) {
        self.words.iter_mut().zip(&o.words).for_each(|(a, b)| *a &= !b);
    }

    pub fn not(&self) -> Bitset {
        let mut b = Bitset { words: self.words.iter().map(|w| !w).collect(), len: self.len };
        b.trim();
        b
    }

    pub fn intersect(&self, o: &Bitset) -> Bitset {
        let mut b = self.clone();
        b.and(o);
        b
    }

    pub fn ones(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(wi, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let t = w.trailing_zeros() as usize;
                w &= w - 1;
                Some(wi * 64 + t)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_not_and_ones_respect_length() {
        let f = Bitset::full(70);
        assert_eq!(f.ones().count(), 70);
        assert!(f.not().is_empty());
        let mut e = Bitset::empty(70);
        e.set(3);
        e.set(69);
        assert_eq!(e.ones().collect::<Vec<_>>(), vec![3, 69]);
        assert_eq!(e.not().ones().count(), 68);
        let mut g = f.clone();
        g.and_not(&e);
        assert!(!g.has(69) && g.has(68));
    }
}
