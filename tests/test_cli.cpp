// The `banyan` command line, run as a user would: a small random model with a tokenizer the
// test trains, every command's --help, generation output formats, and clear errors.
#define BOOST_TEST_MODULE test_cli
#include <boost/test/unit_test.hpp>
#include <fstream>
#include <sstream>

#include "tests/support/test_support.hpp"

using namespace banyan;

namespace {

struct CliModel {
  test::TempDir dir;
  std::filesystem::path model = dir / "model";
  CliModel() {
    LlamaConfig c = test::tiny_llama_config();
    c.hidden_size = 64;
    c.intermediate_size = 128;
    c.vocab_size = 400;  // the trained test tokenizer's
    test::write_random_model(model, c, 99);
    test::train_test_tokenizer(model / "tokenizer.model", 400);
  }
};

CliModel& cli_model() {
  static CliModel m;
  return m;
}

test::CommandResult run_banyan(const std::string& args) {
  return test::run_command(test::shell_quote(test::banyan_binary().string()) + " " + args);
}

std::string model_arg() { return "--model " + test::shell_quote(cli_model().model.string()); }

std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

std::vector<int> ids_of(const std::string& line) {
  std::vector<int> ids;
  std::istringstream in(line);
  for (int id; in >> id;) ids.push_back(id);
  return ids;
}

void expect_in(const std::string& text, const std::string& part) {
  BOOST_TEST(text.find(part) != std::string::npos, "expected '" << part << "' in:\n" << text);
}

}  // namespace

BOOST_AUTO_TEST_CASE(top_level_help_and_unknown_commands) {
  const auto help = run_banyan("--help");
  BOOST_TEST(help.exit_code == 0);
  expect_in(help.out, "generate");
  expect_in(help.out, "tokenize");
  BOOST_TEST(run_banyan("").exit_code == 2);
  const auto bad = run_banyan("frobnicate");
  BOOST_TEST(bad.exit_code == 2);
  expect_in(bad.err, "unknown command 'frobnicate'");
}

BOOST_AUTO_TEST_CASE(every_command_has_help) {
  const auto gen = run_banyan("generate --help");
  BOOST_TEST(gen.exit_code == 0);
  for (const char* opt : {"--model", "--ssm", "--mode", "--prompt", "--prompt-file", "--max-new-tokens", "--temperature",
                          "--top-p", "--top-k", "--seed", "--tokenizer", "--ids", "--device", "--threads", "--tree-width",
                          "--tree-depth", "--max-requests-per-batch", "--max-tokens-per-batch", "--max-sequence-length"})
    expect_in(gen.out, opt);
  const auto tok = run_banyan("tokenize --help");
  BOOST_TEST(tok.exit_code == 0);
  expect_in(tok.out, "--decode");
  for (const char* command : {"serve", "client", "launch", "convert", "bench"}) {
    const auto help = run_banyan(std::string(command) + " --help");
    BOOST_TEST(help.exit_code == 0, command);
    expect_in(help.out, std::string("banyan ") + command);
  }
}

BOOST_AUTO_TEST_CASE(launch_dry_run_shows_the_placement) {
  test::TempDir dir;
  const auto file = dir / "cluster.yaml";
  std::ofstream(file) << "model:\n  path: " << cli_model().model.string()
                      << "\n  pipeline_parallelism_degree: 2\nnodes:\n  - {name: a, host: 10.0.0.1}\n"
                         "  - {name: b, host: 10.0.0.2}\n";
  const auto r = run_banyan("launch --dry-run " + test::shell_quote(file.string()));
  BOOST_TEST_REQUIRE(r.exit_code == 0, r.err);
  expect_in(r.out, "stage 0: layers 0-0 on a, 1 shard(s)");
  expect_in(r.out, "stage 1: layers 1-1 on b, 1 shard(s)");
  std::ofstream(file) << "model:\n  path: " << cli_model().model.string()
                      << "\n  pipeline_parallelism_degree: 3\nnodes:\n  - {name: a, host: 10.0.0.1}\n";
  const auto bad = run_banyan("launch --dry-run " + test::shell_quote(file.string()));
  BOOST_TEST(bad.exit_code == 1);
  expect_in(bad.err, "key 'model.pipeline_parallelism_degree': 3 stages for a model of 2 layers");
}

BOOST_AUTO_TEST_CASE(ids_output_and_summary) {
  const auto r = run_banyan("generate " + model_arg() + " --prompt 'the cat saw' --max-new-tokens 12 --ids");
  BOOST_TEST_REQUIRE(r.exit_code == 0, r.err);
  const auto out = lines(r.out);
  BOOST_TEST_REQUIRE(out.size() == 1u);
  const auto ids = ids_of(out[0]);
  BOOST_TEST(!ids.empty());
  BOOST_TEST(ids.size() <= 12u);
  for (int id : ids) BOOST_TEST((id >= 0 && id < 400));
  expect_in(r.err, "tokens/s");
  expect_in(r.err, "time to first token");
}

BOOST_AUTO_TEST_CASE(text_output_is_prompt_then_decoded_ids) {
  const std::string args = model_arg() + " --prompt 'Lily and Tim' --max-new-tokens 10 --temperature 0.9 --seed 5";
  const auto text = run_banyan("generate " + args);
  const auto ids = run_banyan("generate " + args + " --ids");
  BOOST_TEST_REQUIRE(text.exit_code == 0, text.err);
  BOOST_TEST_REQUIRE(ids.exit_code == 0, ids.err);
  // The prompt's ids and the generated ones decode, as one text, to what generate printed.
  const auto prompt_ids = run_banyan("tokenize " + model_arg() + " 'Lily and Tim'");
  const auto decoded =
      run_banyan("tokenize " + model_arg() + " --decode " + lines(prompt_ids.out).at(0) + " " + lines(ids.out).at(0));
  BOOST_TEST_REQUIRE(decoded.exit_code == 0, decoded.err);
  BOOST_TEST(text.out == decoded.out);
}

BOOST_AUTO_TEST_CASE(seeds_reproduce) {
  auto run = [](int seed) {
    return run_banyan("generate " + model_arg() + " --prompt 'the dog' --max-new-tokens 16 --temperature 1 --top-p 0.95 "
                  "--seed " + std::to_string(seed) + " --ids").out;
  };
  BOOST_TEST(run(11) == run(11));
  BOOST_TEST(run(11) != run(12));
}

BOOST_AUTO_TEST_CASE(prompt_file_runs_as_a_batch) {
  const auto file = cli_model().dir / "prompts.json";
  std::ofstream(file) << R"(["the cat", "a big red ball and", "Tim said"])";
  const auto batch = run_banyan("generate " + model_arg() + " --prompt-file " + test::shell_quote(file.string()) +
                            " --max-new-tokens 8 --ids");
  BOOST_TEST_REQUIRE(batch.exit_code == 0, batch.err);
  const auto out = lines(batch.out);
  BOOST_TEST_REQUIRE(out.size() == 3u);
  const char* prompts[] = {"the cat", "a big red ball and", "Tim said"};
  for (int i = 0; i < 3; ++i) {
    const auto alone = run_banyan("generate " + model_arg() + " --prompt '" + prompts[i] + "' --max-new-tokens 8 --ids");
    BOOST_TEST(out[std::size_t(i)] == lines(alone.out).at(0));
  }
  // A paged KV cache (5 blocks of 16 for sequences of up to 64 tokens) gives the same tokens.
  const auto paged = run_banyan("generate " + model_arg() + " --prompt-file " + test::shell_quote(file.string()) +
                                " --max-new-tokens 8 --ids --max-sequence-length 64 --kv-cache-tokens 80");
  BOOST_TEST_REQUIRE(paged.exit_code == 0, paged.err);
  BOOST_TEST(paged.out == batch.out);
  const auto text = run_banyan("generate " + model_arg() + " --prompt-file " + test::shell_quote(file.string()) +
                           " --max-new-tokens 4");
  expect_in(text.out, "=== [2] ===\nTim said");
}

BOOST_AUTO_TEST_CASE(tokenize_round_trip) {
  const auto ids = run_banyan("tokenize " + model_arg() + " the happy dog");
  BOOST_TEST_REQUIRE(ids.exit_code == 0, ids.err);
  BOOST_TEST(ids_of(ids.out).front() == 1);
  const auto text = run_banyan("tokenize " + model_arg() + " --decode " + lines(ids.out).at(0));
  BOOST_TEST(text.out == "the happy dog\n");
  BOOST_TEST(run_banyan("tokenize " + model_arg() + " --decode 12x").exit_code == 2);
}

BOOST_AUTO_TEST_CASE(bad_input_gets_clear_errors) {
  auto missing = run_banyan("generate --model /no/such/model --max-new-tokens 2");
  BOOST_TEST(missing.exit_code == 1);
  expect_in(missing.err, "/no/such/model: no such file or folder");

  auto unknown = run_banyan("generate " + model_arg() + " --frobnicate 3");
  BOOST_TEST(unknown.exit_code == 2);
  expect_in(unknown.err, "unknown option '--frobnicate'");

  auto not_number = run_banyan("generate " + model_arg() + " --temperature warm");
  BOOST_TEST(not_number.exit_code == 2);
  expect_in(not_number.err, "'--temperature' needs a number");

  auto bad_p = run_banyan("generate " + model_arg() + " --top-p 1.5");
  BOOST_TEST(bad_p.exit_code == 2);

  const auto junk = cli_model().dir / "junk.json";
  std::ofstream(junk) << "[\"unterminated";
  auto bad_file = run_banyan("generate " + model_arg() + " --prompt-file " + test::shell_quote(junk.string()));
  BOOST_TEST(bad_file.exit_code == 1);
  expect_in(bad_file.err, junk.string() + ": not valid JSON");

  auto too_long = run_banyan("generate " + model_arg() + " --max-sequence-length 4 --prompt 'the little cat saw a big red ball'");
  BOOST_TEST(too_long.exit_code == 1);
  expect_in(too_long.err, "max_sequence_length is 4");

  auto small_cache = run_banyan("generate " + model_arg() + " --max-sequence-length 64 --kv-cache-tokens 32");
  BOOST_TEST(small_cache.exit_code == 1);
  expect_in(small_cache.err, "kv_cache_tokens (32) must hold at least one whole sequence: 64 tokens");

  auto no_tokenizer = run_banyan("generate " + model_arg() + " --tokenizer /no/tokenizer.model");
  BOOST_TEST(no_tokenizer.exit_code == 1);
  expect_in(no_tokenizer.err, "/no/tokenizer.model: tokenizer not found");

  const std::string out = " --out " + test::shell_quote((cli_model().dir / "shards.banyan").string());
  auto odd_shards = run_banyan("convert " + model_arg() + " --tensor-shards 3" + out);
  BOOST_TEST(odd_shards.exit_code == 1);
  expect_in(odd_shards.err, "into 3 tensor shards");
  BOOST_TEST(!std::filesystem::exists(cli_model().dir / "shards.shard1of3.banyan"));
  auto no_shards = run_banyan("convert " + model_arg() + " --tensor-shards 0" + out);
  BOOST_TEST(no_shards.exit_code == 2);
  expect_in(no_shards.err, "--tensor-shards must be 1 or more");
  BOOST_TEST_REQUIRE(run_banyan("convert " + model_arg() + " --tensor-shards 2" + out).exit_code == 0);
  const auto shard = cli_model().dir / "shards.shard2of2.banyan";
  auto from_a_shard = run_banyan("convert --model " + test::shell_quote(shard.string()) + out);
  BOOST_TEST(from_a_shard.exit_code == 1);
  expect_in(from_a_shard.err, shard.string() + " holds tensor shard 2/2 of a model: convert the whole model");
}

BOOST_AUTO_TEST_CASE(speculative_mode_gives_the_incremental_text) {
  // The model as its own SSM: every speculated token is accepted, the text is the same.
  const std::string base = "generate " + model_arg() + " --prompt 'the red ball' --max-new-tokens 20 --ids";
  const auto incremental = run_banyan(base + " --mode incremental");
  const auto speculative = run_banyan(base + " --ssm " + test::shell_quote(cli_model().model.string()) + " --tree-width 3 --tree-depth 4");
  BOOST_TEST_REQUIRE(speculative.exit_code == 0, speculative.err);
  BOOST_TEST(speculative.out == incremental.out);
  expect_in(speculative.err, "speculative, 1 SSM(s), tree 3x4");
  expect_in(speculative.err, "tokens per LLM step");

  const auto no_ssm = run_banyan("generate " + model_arg() + " --mode speculative");
  BOOST_TEST(no_ssm.exit_code == 2);
  expect_in(no_ssm.err, "--mode speculative needs at least one --ssm");
  const auto bad_ssm = run_banyan(base + " --ssm /no/ssm");
  BOOST_TEST(bad_ssm.exit_code == 1);
  expect_in(bad_ssm.err, "/no/ssm: no such file or folder");
}

BOOST_AUTO_TEST_CASE(cuda_device_without_a_gpu_is_a_clear_error) {
  const auto r = run_banyan("generate " + model_arg() + " --device cuda --max-new-tokens 2");
  BOOST_TEST(r.exit_code == 1, "exit code " << r.exit_code << " (a crash is >= 128)");
  expect_in(r.err, "--device cuda");
  BOOST_TEST(r.out.empty());
}

BOOST_AUTO_TEST_CASE(a_cpu_run_stays_small) {
  // The CUDA libraries alone would make any process that loads them about 210 MiB resident:
  // `banyan` loads them (a plugin) only for --device cuda.
  const auto r = run_banyan("generate " + model_arg() + " --prompt 'the red ball' --max-new-tokens 4 --stats");
  BOOST_TEST_REQUIRE(r.exit_code == 0, r.err);
  const auto at = r.err.find("peak RSS ");
  BOOST_TEST_REQUIRE(at != std::string::npos, r.err);
  const int mib = std::stoi(r.err.substr(at + 9));
#if defined(__SANITIZE_ADDRESS__)
  BOOST_TEST_MESSAGE("peak RSS " << mib << " MiB (not checked under ASan, whose shadow memory counts)");
#else
  BOOST_TEST(mib < 100, "peak RSS " << mib << " MiB");
#endif
}

BOOST_AUTO_TEST_CASE(a_paged_kv_cache_serves_64_requests_in_a_fraction_of_the_memory) {
  // The demo LLM and SSM with room for 64 requests: a whole sequence per slot (517 rows, 33
  // blocks of 16; 5.5 KiB a row for the two models together) is 180 MiB of KV cache before
  // anything runs; 2048 tokens hold these eight requests' 210 tokens or so each in 11 MiB.
  const auto prompts = cli_model().dir / "eight.json";
  std::ofstream(prompts) << R"(["Once upon a time", "Lily and Tim went to the park", "The little dog", "One day, a big bird",
                               "Tom had a red ball", "Sue liked to paint", "The cat sat", "Ben and his mom"])";
  auto run = [&](int kv_cache_tokens) {
    return run_banyan("generate --model " + test::shell_quote((test::source_dir() / "models/demo-llm").string()) +
                      " --ssm " + test::shell_quote((test::source_dir() / "models/demo-ssm").string()) +
                      " --prompt-file " + test::shell_quote(prompts.string()) +
                      " --max-new-tokens 200 --max-requests-per-batch 64 --ids --stats --kv-cache-tokens " +
                      std::to_string(kv_cache_tokens));
  };
  const auto whole = run(0), paged = run(2048);
  BOOST_TEST_REQUIRE(whole.exit_code == 0, whole.err);
  BOOST_TEST_REQUIRE(paged.exit_code == 0, paged.err);
  BOOST_TEST(paged.out == whole.out);
  auto rss = [](const std::string& err) { return std::stoi(err.substr(err.find("peak RSS ") + 9)); };
#if defined(__SANITIZE_ADDRESS__)
  BOOST_TEST_MESSAGE("peak RSS " << rss(whole.err) << " -> " << rss(paged.err) << " MiB (not checked under ASan)");
#else
  BOOST_TEST(rss(paged.err) + 120 < rss(whole.err), "peak RSS " << rss(whole.err) << " -> " << rss(paged.err) << " MiB");
#endif
}
