//! The order an import loads its tables in: parents before children. A table that another
//! table of the import references by foreign key (in the bundle's catalog, or in the
//! target's own catalog) loads first, so a target table whose foreign keys hold accepts every
//! new child row in every mode. Tables load in waves: a wave starts once the one before it
//! has finished, and the tables of one wave load in parallel (`--jobs`). Tables whose keys
//! form a cycle load in one wave, in any order. A replace publishes each group of tables
//! connected by foreign keys in one transaction.

/// Waves of table indices (each in catalog order), every table after the tables it
/// references; and the cycles found (each a set of two or more tables that reference one
/// another through their foreign keys, loaded in one wave).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOrder {
    pub waves: Vec<Vec<usize>>,
    pub cycles: Vec<Vec<usize>>,
}

/// The waves of `n` tables under `edges` of `(child, parent)`: the parent loads first.
/// Self-references and repeated edges are ignored.
pub fn load_order(n: usize, edges: &[(usize, usize)]) -> LoadOrder {
    let (comp, ncomp) = components(n, edges);
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); ncomp];
    for (i, &c) in comp.iter().enumerate() {
        members[c].push(i);
    }
    // The condensation: each component's parent components, once each.
    let mut parents: Vec<Vec<usize>> = vec![Vec::new(); ncomp];
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); ncomp];
    for &(c, p) in edges {
        if c >= n || p >= n {
            continue;
        }
        let (cc, pc) = (comp[c], comp[p]);
        if cc != pc && !parents[cc].contains(&pc) {
            parents[cc].push(pc);
            children[pc].push(cc);
        }
    }
    let mut waiting: Vec<usize> = parents.iter().map(Vec::len).collect();
    let mut level: Vec<usize> = (0..ncomp).filter(|&c| waiting[c] == 0).collect();
    let mut waves = Vec::new();
    while !level.is_empty() {
        let mut wave: Vec<usize> = level.iter().flat_map(|&c| members[c].clone()).collect();
        wave.sort_unstable();
        waves.push(wave);
        let mut next = Vec::new();
        for &c in &level {
            for &k in &children[c] {
                waiting[k] -= 1;
                if waiting[k] == 0 {
                    next.push(k);
                }
            }
        }
        level = next;
    }
    let mut cycles: Vec<Vec<usize>> = members.into_iter().filter(|m| m.len() > 1).collect();
    cycles.sort();
    LoadOrder { waves, cycles }
}

/// Strongly connected components (Kosaraju, iterative): each table's component id, and
/// how many there are.
fn components(n: usize, edges: &[(usize, usize)]) -> (Vec<usize>, usize) {
    let mut fwd: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut rev: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(c, p) in edges {
        if c < n && p < n {
            fwd[c].push(p);
            rev[p].push(c);
        }
    }
    // Finishing order on the forward graph.
    let mut seen = vec![false; n];
    let mut finished = Vec::with_capacity(n);
    for start in 0..n {
        if seen[start] {
            continue;
        }
        seen[start] = true;
        let mut stack = vec![(start, 0usize)];
        while let Some((v, i)) = stack.pop() {
            if let Some(&w) = fwd[v].get(i) {
                stack.push((v, i + 1));
                if !seen[w] {
                    seen[w] = true;
                    stack.push((w, 0));
                }
            } else {
                finished.push(v);
            }
        }
    }
    // Components on the reversed graph, latest finisher first.
    let mut comp = vec![usize::MAX; n];
    let mut count = 0;
    for &start in finished.iter().rev() {
        if comp[start] != usize::MAX {
            continue;
        }
        comp[start] = count;
        let mut stack = vec![start];
        while let Some(v) = stack.pop() {
            for &w in &rev[v] {
                if comp[w] == usize::MAX {
                    comp[w] = count;
                    stack.push(w);
                }
            }
        }
        count += 1;
    }
    (comp, count)
}

/// Groups of tables connected by foreign keys (in either direction): a replace publishes
/// each group in one transaction. Returns each table's group id.
pub fn groups(n: usize, edges: &[(usize, usize)]) -> Vec<usize> {
    let mut up: Vec<usize> = (0..n).collect();
    fn root(up: &mut [usize], mut i: usize) -> usize {
        while up[i] != i {
            up[i] = up[up[i]];
            i = up[i];
        }
        i
    }
    for &(c, p) in edges {
        if c < n && p < n {
            let (a, b) = (root(&mut up, c), root(&mut up, p));
            if a != b {
                up[a.max(b)] = a.min(b);
            }
        }
    }
    (0..n).map(|i| root(&mut up, i)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_come_before_children_in_waves() {
        // 0 a_child -> 2 z_parent; 1 b_grandchild -> 0; 3 alone.
        let o = load_order(4, &[(0, 2), (1, 0)]);
        assert_eq!(o.waves, vec![vec![2, 3], vec![0], vec![1]]);
        assert!(o.cycles.is_empty());
        // No edges: one wave in catalog order.
        assert_eq!(load_order(3, &[]).waves, vec![vec![0, 1, 2]]);
        // Self-references and repeated edges change nothing.
        let o = load_order(2, &[(0, 0), (0, 1), (0, 1)]);
        assert_eq!(o.waves, vec![vec![1], vec![0]]);
        assert!(o.cycles.is_empty());
    }

    #[test]
    fn a_cycle_loads_in_one_wave_and_is_named() {
        // 0 <-> 1 cycle, 2 references 1, 1 references 3.
        let o = load_order(4, &[(0, 1), (1, 0), (2, 1), (1, 3)]);
        assert_eq!(o.waves, vec![vec![3], vec![0, 1], vec![2]]);
        assert_eq!(o.cycles, vec![vec![0, 1]]);
        // Every table is in exactly one wave.
        let mut all: Vec<usize> = o.waves.concat();
        all.sort_unstable();
        assert_eq!(all, vec![0, 1, 2, 3]);
    }

    #[test]
    fn groups_join_tables_linked_either_way() {
        let g = groups(5, &[(0, 2), (3, 2), (4, 4)]);
        assert_eq!(g[0], g[2]);
        assert_eq!(g[3], g[2]);
        assert_ne!(g[1], g[0]);
        assert_ne!(g[4], g[0]);
        assert_ne!(g[4], g[1]);
    }
}
