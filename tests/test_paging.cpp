// Offloading by paging (model/weight_paging.hpp, model/paged_weights.hpp): the plan keeps what
// fits, streaming keeps the mapped weights under the budget while every byte read is the file's,
// and an offloaded model generates exactly what a resident one does. (test_offload: the same at
// TinyLlama-1.1B scale, with peak memory measured.)
#define BOOST_TEST_MODULE test_paging
#include <boost/test/unit_test.hpp>
#include <fstream>
#include <numeric>
#include <sstream>

#include "cpu/cpu_backend.hpp"
#include "engine/engine.hpp"
#include "model/converted_file.hpp"
#include "model/error.hpp"
#include "model/mapped_file.hpp"
#include "model/random_weights.hpp"
#include "model/slot_schedule.hpp"
#include "model/paged_weights.hpp"
#include "tests/support/test_support.hpp"

using namespace banyan;

namespace {

constexpr std::size_t kMiB = std::size_t(1) << 20;

// Bytes of the mapping holding `inside` that are resident in this process (/proc/self/smaps).
std::size_t mapped_rss(const void* inside) {
  std::ifstream smaps("/proc/self/smaps");
  const auto at = std::uintptr_t(inside);
  bool ours = false;
  for (std::string line; std::getline(smaps, line);) {
    unsigned long begin = 0, end = 0;
    char dash = 0;
    std::istringstream head(line);
    if (line.find(' ') != std::string::npos && (head >> std::hex >> begin >> dash >> end) && dash == '-') {
      ours = begin <= at && at < end;
    } else if (ours && line.starts_with("Rss:")) {
      return std::stoul(line.substr(4)) * 1024;
    }
  }
  BOOST_FAIL("no mapping holds the address");
  return 0;
}

std::vector<PagedUnit> units_in(const MappedFile& f, std::size_t unit_bytes) {
  std::vector<PagedUnit> units(f.size() / unit_bytes);
  for (std::size_t u = 0; u < units.size(); ++u) units[u].ranges.push_back(f.bytes().subspan(u * unit_bytes, unit_bytes));
  return units;
}

std::vector<PagedUnit> sized_units(const std::vector<std::size_t>& sizes) {
  static const std::vector<std::byte> backing(64 * kMiB);  // never read: only the sizes count
  std::vector<PagedUnit> units;
  for (std::size_t s : sizes) units.push_back({.ranges = {std::span(backing).first(s)}});
  return units;
}

// Six int8 layers of 256 wide: large enough that a budget below the whole model streams.
LlamaConfig paging_test_config() {
  LlamaConfig c = test::tiny_llama_config();
  c.hidden_size = 256;
  c.intermediate_size = 768;
  c.num_hidden_layers = 6;
  c.vocab_size = 512;
  return c;
}

// Random weights of that shape written as a `banyan convert` file in `dir`; returns its path.
std::filesystem::path write_paging_test_model(const test::TempDir& dir, std::uint64_t seed) {
  const auto file = dir / "model.banyan";
  write_converted(EncodedWeights(RandomWeights(paging_test_config(), seed), {WeightFormat::q8, DType::f32}), file);
  return file;
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_plan_keeps_what_fits) {
  std::vector<PagedUnit> units = sized_units(std::vector<std::size_t>(10, 4 * kMiB));
  units.push_back({.ranges = {std::span<const std::byte>()}, .on_demand = true});  // an embedding: never counted

  OffloadPlan all = plan_offload(units, 100 * kMiB);
  BOOST_TEST((all.in_flight == 0 && all.resident_bytes == 40 * kMiB && all.reserve_bytes == 0));
  BOOST_TEST(std::count(all.resident.begin(), all.resident.end(), true) == 10);

  OffloadPlan tight = plan_offload(units, 16 * kMiB);  // 2 in flight (8 MiB), 2 resident
  BOOST_TEST((tight.in_flight == 2 && tight.reserve_bytes == 8 * kMiB && tight.resident_bytes == 8 * kMiB));
  BOOST_TEST((tight.resident[0] && tight.resident[1] && !tight.resident[2] && !tight.resident[10]));

  OffloadPlan roomy = plan_offload(units, 30 * kMiB);  // 3 in flight cost at most half of it
  BOOST_TEST((roomy.in_flight == 3 && roomy.resident_bytes == 16 * kMiB));

  OffloadPlan reserved = plan_offload(units, 16 * kMiB, 12 * kMiB);
  BOOST_TEST((reserved.in_flight == 3 && reserved.resident_bytes == 4 * kMiB));

  // A big classifier: the two largest units bound what is in flight.
  OffloadPlan mixed = plan_offload(sized_units({4 * kMiB, 4 * kMiB, 4 * kMiB, 12 * kMiB}), 20 * kMiB);
  BOOST_TEST((mixed.in_flight == 2 && mixed.reserve_bytes == 16 * kMiB && mixed.resident_bytes == 4 * kMiB));

  try {
    plan_offload(units, 7 * kMiB);
    BOOST_FAIL("a budget below two units passed");
  } catch (const Error& e) {
    BOOST_TEST(std::string(e.what()).find("its two largest units (8 MiB together") != std::string::npos, e.what());
  }
}

BOOST_AUTO_TEST_CASE(streaming_stays_under_the_budget_and_reads_the_file) {
  test::TempDir dir;
  const auto file = dir / "weights.bin";
  constexpr std::size_t unit = 4 * kMiB, count = 12;
  {
    std::vector<std::uint32_t> words(count * unit / 4);
    std::iota(words.begin(), words.end(), 7u);
    std::ofstream(file, std::ios::binary).write(reinterpret_cast<const char*>(words.data()), std::streamsize(count * unit));
  }
  const MappedFile mapped(file);
  auto units = units_in(mapped, unit);
  PagedWeights paged(units, plan_offload(units, 16 * kMiB));  // 2 resident, 10 streaming, 2 in flight
  auto sum = [&](std::size_t u) {  // what compute reads
    const auto* w = reinterpret_cast<const std::uint32_t*>(mapped.bytes().data() + u * unit);
    return std::accumulate(w, w + unit / 4, std::uint64_t(0));
  };
  auto expected = [&](std::size_t u) {
    const std::uint64_t first = 7 + u * unit / 4, n = unit / 4;
    return n * first + n * (n - 1) / 2;
  };
  std::size_t peak = 0;
  for (int pass = 0; pass < 3; ++pass)
    for (std::size_t u = 0; u < count; ++u) {
      paged.acquire(int(u));
      BOOST_TEST(sum(u) == expected(u));
      peak = std::max(peak, mapped_rss(mapped.bytes().data()));
      paged.release(int(u));
    }
  BOOST_TEST(peak <= 16 * kMiB, "peak " << peak / kMiB << " MiB mapped in");
  BOOST_TEST(peak >= 12 * kMiB);  // the resident units and the two in flight really were mapped
  const OffloadStats s = paged.stats();
  BOOST_TEST(s.streamed_bytes >= 30 * unit);  // 10 units each pass (and maybe the next pass's first)
  BOOST_TEST(s.streamed_bytes <= 31 * unit);
  BOOST_TEST((s.resident_bytes == 2 * unit && s.reserve_bytes == 2 * unit && s.disk_bytes == count * unit));

  // Out of order (a pass that skips units): what falls outside the window is dropped.
  paged.acquire(5);
  paged.acquire(9);
  BOOST_TEST(sum(9) == expected(9));
  BOOST_TEST(mapped_rss(mapped.bytes().data()) <= 16 * kMiB);
}

// Plays a schedule's copies into simulated slots, checking what a GPU's streaming relies on: a
// copy never lands in a slot in use, and an acquired unit is the one its slot holds.
struct SimulatedSlots {
  SlotSchedule schedule;
  std::vector<int> holds;  // per slot: the position copied into it last
  std::vector<bool> in_use;
  int copies = 0;
  SimulatedSlots(int positions, int slots)
      : schedule(positions, slots), holds(std::size_t(slots), -1), in_use(std::size_t(slots), false) {}
  void play(const std::vector<SlotSchedule::Copy>& cs) {
    for (const auto& c : cs) {
      BOOST_TEST_REQUIRE(!in_use[std::size_t(c.slot)], "copy of " << c.position << " into slot " << c.slot << " in use");
      holds[std::size_t(c.slot)] = c.position;
      ++copies;
    }
  }
  std::optional<int> acquire(int p) {
    std::vector<SlotSchedule::Copy> cs;
    const auto s = schedule.acquire(p, cs);
    play(cs);
    if (s) {
      BOOST_TEST_REQUIRE(holds[std::size_t(*s)] == p);
      in_use[std::size_t(*s)] = true;
    }
    return s;
  }
  void release(int p, int slot) {
    in_use[std::size_t(slot)] = false;
    std::vector<SlotSchedule::Copy> cs;
    schedule.release(p, cs);
    play(cs);
  }
};

BOOST_AUTO_TEST_CASE(a_slot_schedule_streams_each_unit_once_a_pass_ahead_of_its_use) {
  SimulatedSlots five(5, 2);
  std::vector<SlotSchedule::Copy> first;
  SlotSchedule fresh(5, 2);
  BOOST_TEST((fresh.acquire(0, first) == 0));
  BOOST_TEST((first == std::vector<SlotSchedule::Copy>{{0, 0}, {1, 1}}));  // its own, then the next one ahead
  for (int pass = 0; pass < 3; ++pass)
    for (int p = 0; p < 5; ++p) {
      const auto s = five.acquire(p);
      BOOST_TEST_REQUIRE(s.has_value());
      BOOST_TEST(five.holds[std::size_t(1 - *s)] == (p + 1) % 5);  // the next one is on its way
      five.release(p, *s);
    }
  BOOST_TEST(five.copies == 3 * 5 + 2);  // every unit once a pass; the next pass's first two are on their way

  // As many slots as units: after the first pass, nothing moves.
  SimulatedSlots three(3, 3);
  for (int pass = 0; pass < 3; ++pass)
    for (int p = 0; p < 3; ++p) three.release(p, *three.acquire(p));
  BOOST_TEST(three.copies == 3);

  // Out of order, and two users at once (two pipeline stages): a third waits for a release.
  SimulatedSlots two(6, 2);
  const auto a = two.acquire(4);
  const auto b = two.acquire(1);
  BOOST_TEST_REQUIRE((a && b && *a != *b));
  std::vector<SlotSchedule::Copy> none;
  BOOST_TEST(!two.schedule.acquire(2, none).has_value());
  BOOST_TEST(none.empty());
  two.release(4, *a);
  const auto c = two.acquire(2);
  BOOST_TEST_REQUIRE(c.has_value());
  BOOST_TEST(*c == *a);  // the one slot not in use
}

BOOST_AUTO_TEST_CASE(an_offloaded_model_generates_what_a_resident_one_does) {
  test::TempDir dir;
  auto source = open_converted(write_paging_test_model(dir, 3));
  auto backend = cpu::make_cpu_backend({2});
  LlamaModel resident(*source, *backend);
  LlamaModel offloaded(*source, *backend, {.offload = true});
  page_models({&offloaded}, {.budget = resident.weight_bytes() * 2 / 5});  // 40%: two layers in flight must fit
  BOOST_TEST_REQUIRE(offloaded.paged() != nullptr);
  BOOST_TEST(offloaded.paged()->stats().resident_bytes > 0u);  // some layers stay, the rest stream

  LlamaConfig small = paging_test_config();
  small.hidden_size = 64;
  small.intermediate_size = 128;
  small.num_hidden_layers = 1;
  RandomWeights ssm_weights(small, 4);
  LlamaModel ssm(ssm_weights, *backend);
  const std::vector<std::vector<std::int32_t>> prompts = {{1, 5, 9, 33, 70}, {1, 200, 17}, {1, 400, 401, 402, 12, 3, 3}};
  auto generate = [&](LlamaModel& llm, bool speculative) {
    Engine engine(llm, speculative ? std::vector<LlamaModel*>{&ssm} : std::vector<LlamaModel*>{}, {});
    std::vector<RequestId> ids;
    for (const auto& p : prompts) ids.push_back(engine.submit(p, {24, {}}));
    engine.run([](RequestId, std::span<const std::int32_t>) {});
    std::vector<std::vector<std::int32_t>> out;
    for (auto id : ids) out.push_back(engine.requests().request(id).tokens);
    return out;
  };
  const auto want = generate(resident, false);
  BOOST_TEST((generate(offloaded, false) == want));
  BOOST_TEST((generate(offloaded, true) == want));
  const OffloadStats s = offloaded.paged()->stats();
  BOOST_TEST(s.streamed_bytes > 10 * (s.disk_bytes - s.resident_bytes));  // every step streamed the rest
}

BOOST_AUTO_TEST_CASE(offloading_needs_a_converted_file_and_room) {
  auto backend = cpu::make_cpu_backend({1});
  RandomWeights in_memory(test::tiny_llama_config(), 1);
  const ModelOptions o{.offload = true};
  BOOST_CHECK_EXCEPTION(LlamaModel(in_memory, *backend, o), Error, [](const Error& e) {
    return std::string(e.what()).find("cannot be offloaded: offloading streams weights from a `banyan convert` file") !=
           std::string::npos;
  });
  test::TempDir dir;
  write_converted(in_memory, dir / "m.banyan");
  auto source = open_converted(dir / "m.banyan");
  LlamaModel model(*source, *backend, o);
  BOOST_CHECK_EXCEPTION(page_models({&model}, {.budget = 1}), Error, [](const Error& e) {
    return std::string(e.what()).find("cannot stream this model") != std::string::npos;
  });
  LlamaModel resident(*source, *backend);
  BOOST_CHECK_THROW(page_models({&resident}, {.budget = kMiB}), Error);  // not loaded for offloading
}

BOOST_AUTO_TEST_CASE(pipeline_stages_paged_together_share_one_budget) {
  // Two stages of a model under one budget of 2.5 layers: split in halves, neither half could
  // hold its two units in flight; together they stream as one sequence, and the logits of a
  // prefill and a decode step are the resident model's, bit for bit.
  test::TempDir dir;
  auto source = open_converted(write_paging_test_model(dir, 5));
  auto backend = cpu::make_cpu_backend({2});
  LlamaModel whole(*source, *backend);
  const ModelOptions offload{.offload = true};
  LlamaModel first(*source, *backend, offload, {}, {0, 3}), second(*source, *backend, offload, {}, {3, 6});
  const std::size_t layer = 4 * 256 * 256 + 3 * 256 * 768;  // a q8 layer's values, without its scales
  const PagingBudget budget{.budget = layer * 5 / 2};
  LlamaModel half(*source, *backend, offload, {}, {3, 6});
  BOOST_CHECK_THROW(page_models({&half}, {.budget = budget.budget / 2}), Error);
  const auto paged = page_models({&first, &second}, budget);
  BOOST_TEST(first.paged() == paged.get());
  BOOST_TEST(second.paged() == paged.get());

  auto whole_kv = whole.create_kv_cache({1, 32});
  auto first_kv = first.create_kv_cache({1, 32}), second_kv = second.create_kv_cache({1, 32});
  ForwardBatch prefill, decode;
  for (int i = 0; i < 7; ++i) prefill.add_causal(1 + 37 * i, 0, i, i == 6);
  decode.add_causal(99, 0, 7, true);
  for (const ForwardBatch* b : {&prefill, &decode}) {
    std::vector<float> want, activations, got;
    whole.forward(*b, *whole_kv, want);
    first.forward_stage(*b, *first_kv, {}, activations);
    second.forward_stage(*b, *second_kv, activations, got);
    BOOST_TEST((got == want));
  }
  const OffloadStats s = paged->stats();
  BOOST_TEST(s.resident_bytes + s.reserve_bytes <= budget.budget);
  BOOST_TEST(s.units_streamed >= 2 * 5);  // both passes streamed at least the five layers that do not fit
}

