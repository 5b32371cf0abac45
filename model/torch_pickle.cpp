#include "model/torch_pickle.hpp"

#include <cstring>
#include <map>
#include <memory>
#include <variant>

#include "model/error.hpp"

namespace banyan {

namespace {

struct Value;
using Ref = std::shared_ptr<Value>;

struct Global { std::string module, name; };
struct Storage { std::string type, key; };
struct Tensor {
  Storage storage;
  std::int64_t offset = 0;
  std::vector<std::int64_t> shape, strides;
};
struct Tuple { std::vector<Ref> items; };
struct List { std::vector<Ref> items; };
struct Dict { std::vector<std::pair<Ref, Ref>> items; };
struct Opaque { std::string what; };  // an object we do not need to understand

struct Value {
  std::variant<std::monostate, bool, std::int64_t, double, std::string, Global, Storage, Tensor, Tuple,
               List, Dict, Opaque>
      v;
};

template <class T>
Ref make(T x) {
  return std::make_shared<Value>(Value{std::move(x)});
}

class Unpickler {
 public:
  Unpickler(std::span<const std::byte> data, const std::string& where) : data_(data), where_(where) {}

  Ref run() {
    for (;;) {
      const std::size_t op_at = pos_;
      const auto op = std::uint8_t(byte());
      switch (op) {
        case 0x80: byte(); break;      // PROTO
        case 0x95: uint(8); break;     // FRAME
        case '.': return pop();        // STOP
        case '(': marks_.push_back(stack_.size()); break;
        case '}': push(make(Dict{})); break;
        case ']': push(make(List{})); break;
        case ')': push(make(Tuple{})); break;
        case 'N': push(make(std::monostate{})); break;
        case 0x88: push(make(true)); break;
        case 0x89: push(make(false)); break;
        case 'J': push(make(std::int64_t(std::int32_t(uint(4))))); break;
        case 'K': push(make(std::int64_t(uint(1)))); break;
        case 'M': push(make(std::int64_t(uint(2)))); break;
        case 0x8a: push(make(long_int(uint(1)))); break;  // LONG1
        case 0x8b: push(make(long_int(uint(4)))); break;  // LONG4
        case 'G': push(make(big_endian_double())); break;
        case 'X': push(make(text(uint(4)))); break;       // BINUNICODE
        case 0x8c: push(make(text(uint(1)))); break;      // SHORT_BINUNICODE
        case 0x8d: push(make(text(uint(8)))); break;      // BINUNICODE8
        case 'T': case 'B': push(make(text(uint(4)))); break;  // BINSTRING, BINBYTES
        case 'U': case 'C': push(make(text(uint(1)))); break;  // SHORT_BINSTRING, SHORT_BINBYTES
        case 'c': {
          auto module = line();
          push(make(Global{std::move(module), line()}));
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          auto name = as<std::string>(pop(), "a global's name");
          push(make(Global{as<std::string>(pop(), "a global's module"), std::move(name)}));
          break;
        }
        case 't': push(make(Tuple{pop_to_mark()})); break;
        case 0x85: push(make(Tuple{pop_n(1)})); break;
        case 0x86: push(make(Tuple{pop_n(2)})); break;
        case 0x87: push(make(Tuple{pop_n(3)})); break;
        case 'a': {
          auto item = pop();
          list_of(top()).push_back(std::move(item));
          break;
        }
        case 'e': {
          auto items = pop_to_mark();
          auto& list = list_of(top());
          list.insert(list.end(), items.begin(), items.end());
          break;
        }
        case 's': {
          auto value = pop();
          auto key = pop();
          dict_of(top()).emplace_back(std::move(key), std::move(value));
          break;
        }
        case 'u': {
          auto items = pop_to_mark();
          if (items.size() % 2 != 0) fail(op_at, "SETITEMS with an odd number of items");
          auto& dict = dict_of(top());
          for (std::size_t i = 0; i < items.size(); i += 2) dict.emplace_back(items[i], items[i + 1]);
          break;
        }
        case 'q': memo_[std::uint32_t(uint(1))] = top(); break;  // BINPUT
        case 'r': memo_[std::uint32_t(uint(4))] = top(); break;  // LONG_BINPUT
        case 0x94: memo_[std::uint32_t(memo_.size())] = top(); break;  // MEMOIZE
        case 'h': push(memo_get(uint(1), op_at)); break;
        case 'j': push(memo_get(uint(4), op_at)); break;
        case 'Q': push(persistent_load(pop(), op_at)); break;  // BINPERSID
        case 'R': case 0x81: {  // REDUCE, NEWOBJ
          auto args = pop();
          auto callable = pop();
          push(call(callable, args));
          break;
        }
        case 'b': pop(); break;  // BUILD: object state we do not need
        default: fail(op_at, "unsupported pickle opcode 0x" + hex(op));
      }
    }
  }

 private:
  std::span<const std::byte> data_;
  const std::string& where_;
  std::size_t pos_ = 0;
  std::vector<Ref> stack_;
  std::vector<std::size_t> marks_;
  std::map<std::uint32_t, Ref> memo_;

  [[noreturn]] void fail(std::size_t at, const std::string& what) const {
    throw Error(where_ + ": corrupt or unsupported pickle at byte " + std::to_string(at) + ": " + what);
  }
  static std::string hex(unsigned v) {
    const char* d = "0123456789abcdef";
    return {d[(v >> 4) & 15], d[v & 15]};
  }

  std::byte byte() {
    if (pos_ >= data_.size()) fail(pos_, "unexpected end of data");
    return data_[pos_++];
  }
  std::uint64_t uint(int width) {
    if (pos_ + width > data_.size()) fail(pos_, "unexpected end of data");
    std::uint64_t v = 0;
    for (int i = width - 1; i >= 0; --i) v = (v << 8) | std::uint64_t(data_[pos_ + i]);
    pos_ += width;
    return v;
  }
  std::int64_t long_int(std::uint64_t n) {
    if (n > 8) fail(pos_, "integer wider than 64 bits");
    if (n == 0) return 0;
    std::uint64_t v = uint(int(n));
    if (n < 8 && (v >> (8 * n - 1)) & 1) v |= ~std::uint64_t(0) << (8 * n);  // sign-extend
    return std::int64_t(v);
  }
  double big_endian_double() {
    std::uint64_t bits = 0;
    for (int i = 0; i < 8; ++i) bits = (bits << 8) | std::uint64_t(byte());
    double d;
    std::memcpy(&d, &bits, sizeof d);
    return d;
  }
  std::string text(std::uint64_t n) {
    if (n > data_.size() - pos_) fail(pos_, "string runs past the end of data");
    std::string s(reinterpret_cast<const char*>(data_.data() + pos_), n);
    pos_ += n;
    return s;
  }
  std::string line() {
    std::string s;
    for (char c; (c = char(byte())) != '\n';) s += c;
    return s;
  }

  void push(Ref v) { stack_.push_back(std::move(v)); }
  Ref pop() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) fail(pos_, "stack underflow");
    auto v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  Ref& top() {
    if (stack_.empty()) fail(pos_, "stack underflow");
    return stack_.back();
  }
  std::vector<Ref> pop_n(std::size_t n) {
    std::vector<Ref> items(n);
    for (std::size_t i = n; i-- > 0;) items[i] = pop();
    return items;
  }
  std::vector<Ref> pop_to_mark() {
    if (marks_.empty()) fail(pos_, "no mark on the stack");
    const std::size_t mark = marks_.back();
    marks_.pop_back();
    std::vector<Ref> items(stack_.begin() + std::ptrdiff_t(mark), stack_.end());
    stack_.resize(mark);
    return items;
  }
  Ref memo_get(std::uint64_t key, std::size_t at) {
    auto it = memo_.find(std::uint32_t(key));
    if (it == memo_.end()) fail(at, "memo key " + std::to_string(key) + " was never stored");
    return it->second;
  }

  template <class T>
  T& as(const Ref& v, const char* what) {
    if (auto* p = std::get_if<T>(&v->v)) return *p;
    fail(pos_, std::string("expected ") + what);
  }
  std::vector<Ref>& list_of(Ref& v) { return as<List>(v, "a list").items; }
  std::vector<std::pair<Ref, Ref>>& dict_of(Ref& v) { return as<Dict>(v, "a dict").items; }
  std::vector<std::int64_t> ints(const Ref& v, const char* what) {
    std::vector<std::int64_t> out;
    for (const auto& item : as<Tuple>(v, what).items) out.push_back(as<std::int64_t>(item, what));
    return out;
  }

  // torch's persistent id: ('storage', storage_type, key, location, numel).
  Ref persistent_load(const Ref& pid, std::size_t at) {
    const auto& t = as<Tuple>(pid, "a persistent id tuple").items;
    if (t.size() < 3 || as<std::string>(t[0], "'storage'") != "storage") fail(at, "unknown persistent id");
    return make(Storage{as<Global>(t[1], "a storage type").name, as<std::string>(t[2], "a storage key")});
  }

  Ref call(const Ref& callable, const Ref& args) {
    const auto* g = std::get_if<Global>(&callable->v);
    if (g == nullptr) return make(Opaque{"call of a non-global"});
    const std::string fn = g->module + "." + g->name;
    if (fn == "collections.OrderedDict") return make(Dict{});
    if (fn == "torch._utils._rebuild_tensor_v2" || fn == "torch._utils._rebuild_tensor") {
      const auto& a = as<Tuple>(args, "tensor rebuild arguments").items;
      if (a.size() < 4) fail(pos_, "too few arguments to " + fn);
      return make(Tensor{as<Storage>(a[0], "a storage"), as<std::int64_t>(a[1], "a storage offset"),
                         ints(a[2], "a tensor shape"), ints(a[3], "tensor strides")});
    }
    if (fn == "torch._utils._rebuild_parameter" || fn == "torch._utils._rebuild_parameter_with_state") {
      const auto& a = as<Tuple>(args, "parameter rebuild arguments").items;
      if (a.empty()) fail(pos_, "no tensor in " + fn);
      return a[0];
    }
    return make(Opaque{fn});
  }
};

void flatten(const Value& v, const std::string& prefix, std::vector<PickledTensor>& out) {
  const auto* dict = std::get_if<Dict>(&v.v);
  if (dict == nullptr) return;
  for (const auto& [key, value] : dict->items) {
    const auto* k = std::get_if<std::string>(&key->v);
    if (k == nullptr) continue;
    const std::string name = prefix.empty() ? *k : prefix + "." + *k;
    if (const auto* t = std::get_if<Tensor>(&value->v)) {
      out.push_back({name, t->storage.type, t->storage.key, t->offset, t->shape, t->strides});
    } else {
      flatten(*value, name, out);
    }
  }
}

}  // namespace

std::vector<PickledTensor> read_torch_pickle(std::span<const std::byte> pickle, const std::string& where) {
  Unpickler u(pickle, where);
  const Ref root = u.run();
  std::vector<PickledTensor> tensors;
  flatten(*root, "", tensors);
  if (tensors.empty()) throw Error(where + ": the pickle holds no tensors (expected a state dict)");
  return tensors;
}

}  // namespace banyan
