// Hash indexes of voxel keys (non-negative int64) for the CPU ops: the key mix, the split of
// keys into partitions, and two open-addressing tables with linear probing. Insertion order is
// the caller's scan order, so the ids they hand out are first-come and deterministic.
#pragma once

#include <cstdint>
#include <vector>

namespace perception {
namespace hash {

// splitmix64 finalizer: a good mix of all key bits.
inline uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

// Partition in [0, parts) of a key with mixed hash h, from its high bits (the table slots use
// the low bits, so the two stay independent).
inline int partition_of(uint64_t h, int parts) {
  return static_cast<int>(((h >> 32) * static_cast<uint64_t>(parts)) >> 32);
}

// Open-addressing map from a non-negative int64 key to an int32 value (linear probing).
class KeyMap {
 public:
  explicit KeyMap(int64_t expected) {
    int64_t cap = 16;
    while (cap < 2 * expected + 1) cap <<= 1;
    slots_.assign(static_cast<size_t>(cap), Slot{-1, 0});
    mask_ = static_cast<uint64_t>(cap - 1);
  }
  // Value slot of key; *found tells whether the key was present (else it is inserted).
  int32_t* find_or_insert(int64_t key, uint64_t h, bool* found) {
    uint64_t i = h & mask_;
    while (true) {
      Slot& s = slots_[i];
      if (s.key == key) {
        *found = true;
        return &s.val;
      }
      if (s.key < 0) {
        s.key = key;
        *found = false;
        return &s.val;
      }
      i = (i + 1) & mask_;
    }
  }

 private:
  struct Slot {
    int64_t key;
    int32_t val;
  };
  std::vector<Slot> slots_;
  uint64_t mask_ = 0;
};

// Compact open-addressing index of the voxels of one partition: 4-byte slots hold the voxel
// number, whose key is read back from the voxel list (recent voxels are hot in cache).
class VoxelIndex {
 public:
  // slots is caller-owned storage, reused across calls (its capacity is kept).
  VoxelIndex(int64_t expected, std::vector<int32_t>* slots) : slots_(slots) {
    int64_t cap = 16;
    while (cap < expected + expected / 2 + 1) cap <<= 1;
    slots_->assign(static_cast<size_t>(cap), -1);
    mask_ = static_cast<uint64_t>(cap - 1);
  }
  // Voxel number of key, or -1 after finding the empty slot for it (fill it with `set`).
  int32_t find(int64_t key, uint64_t h, const int64_t* keys, uint64_t* slot) const {
    const int32_t* s = slots_->data();
    uint64_t i = h & mask_;
    while (true) {
      const int32_t v = s[i];
      if (v < 0 || keys[v] == key) {
        *slot = i;
        return v;
      }
      i = (i + 1) & mask_;
    }
  }
  void set(uint64_t slot, int32_t v) { (*slots_)[slot] = v; }

 private:
  std::vector<int32_t>* slots_;
  uint64_t mask_ = 0;
};

}  // namespace hash
}  // namespace perception
