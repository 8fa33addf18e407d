#pragma once
// A hash map keyed by object id for the hot paths: the pending deliveries and their indexes, the
// scheduler's queued and in-flight jobs. Boost's open-addressing table keeps each key and value in
// one array slot and finds it with one probe of a group's metadata, where a node-based
// std::unordered_map walks a bucket's chain and (libstdc++ not caching the hash of a "fast" hash)
// hashes each next node again, each one a cache miss once the map is larger than the cache (a
// backlog of a few hundred thousand deliveries). bench/README.md, "Issue #15", has the figures.
//
// Unlike std::unordered_map, an insertion may move every element: no reference, pointer or
// iterator into the map may be kept across an insertion into the same map.

#include "core/common/object_id.hpp"

#include <boost/unordered/unordered_flat_map.hpp>

namespace hookd {

template <class T>
using id_map = boost::unordered_flat_map<object_id, T, object_id_hash>;

}  // namespace hookd
