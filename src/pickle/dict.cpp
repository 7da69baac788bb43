// mp::pickle::Dict and Set: Python's dict and set contents, in insertion order, indexed by
// hash() and compared with Python's == (their own == is with Value's, in value.cpp).
#include "mp/pickle.hpp"

namespace mp::pickle {

Dict::Dict(std::initializer_list<Item> items) {
  for (const auto& [k, v] : items) insert_or_assign(k, v);
}

std::ptrdiff_t Dict::index_of(const Value& key, std::size_t h) const {
  auto [lo, hi] = index_.equal_range(h);
  for (auto it = lo; it != hi; ++it)
    if (items_[it->second].first.is(key) || items_[it->second].first == key) return static_cast<std::ptrdiff_t>(it->second);
  return -1;
}

const Value* Dict::find(const Value& key) const {
  auto i = index_of(key, hash(key));
  return i < 0 ? nullptr : &items_[static_cast<std::size_t>(i)].second;
}
Value* Dict::find(const Value& key) {
  auto i = index_of(key, hash(key));
  return i < 0 ? nullptr : &items_[static_cast<std::size_t>(i)].second;
}

const Value& Dict::at(const Value& key) const {
  if (const Value* v = find(key)) return *v;
  throw KeyError("mp::pickle: key " + key.repr(200) + " not in dict");
}

Value& Dict::operator[](const Value& key) {
  std::size_t h = hash(key);
  auto i = index_of(key, h);
  if (i >= 0) return items_[static_cast<std::size_t>(i)].second;
  index_.emplace(h, items_.size());
  items_.emplace_back(key, Value());
  return items_.back().second;
}

bool Dict::insert_or_assign(Value key, Value value) {
  std::size_t h = hash(key);
  auto i = index_of(key, h);
  if (i >= 0) {
    items_[static_cast<std::size_t>(i)].second = std::move(value);
    return false;
  }
  index_.emplace(h, items_.size());
  items_.emplace_back(std::move(key), std::move(value));
  return true;
}

bool Dict::erase(const Value& key) {
  auto i = index_of(key, hash(key));
  if (i < 0) return false;
  items_.erase(items_.begin() + i);
  reindex();
  return true;
}

void Dict::reindex() {
  index_.clear();
  for (std::size_t i = 0; i < items_.size(); ++i) index_.emplace(hash(items_[i].first), i);
}

Set::Set(std::initializer_list<Value> items) {
  for (const auto& v : items) add(v);
}

std::ptrdiff_t Set::index_of(const Value& v, std::size_t h) const {
  auto [lo, hi] = index_.equal_range(h);
  for (auto it = lo; it != hi; ++it)
    if (items_[it->second].is(v) || items_[it->second] == v) return static_cast<std::ptrdiff_t>(it->second);
  return -1;
}

bool Set::contains(const Value& v) const { return index_of(v, hash(v)) >= 0; }

bool Set::add(Value v) {
  std::size_t h = hash(v);
  if (index_of(v, h) >= 0) return false;
  index_.emplace(h, items_.size());
  items_.push_back(std::move(v));
  return true;
}

bool Set::erase(const Value& v) {
  auto i = index_of(v, hash(v));
  if (i < 0) return false;
  items_.erase(items_.begin() + i);
  reindex();
  return true;
}

void Set::reindex() {
  index_.clear();
  for (std::size_t i = 0; i < items_.size(); ++i) index_.emplace(hash(items_[i]), i);
}

}  // namespace mp::pickle
