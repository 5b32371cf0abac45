#include "banyan/client.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <future>
#include <map>
#include <mutex>

#include "actors/interfaces.hpp"

namespace banyan {

namespace {

using namespace banyan::actors;

struct GenerationState {
  GenerationState() = default;  // user-declared: CAF 0.17 under C++20 (docs/dependencies.md)
  GenerationResult result;
  request_actor request;       // the server's, once it has answered
  bool cancel_wanted = false;  // a cancel that came before that answer
};

// One generation on the client side: asks the server's text service, collects the text, and
// hands it to the callbacks. A cancel_atom cancels it at the server.
caf::behavior generation(caf::stateful_actor<GenerationState>* self, text_service_actor service,
                         TextGenerateRequest request, Client::OnText on_text, Client::OnDone on_done) {
  auto finish = [=](GenerationResult& r) {
    on_done(r);
    self->quit();
  };
  // A server (or its request actor) that goes away ends the generation with an error: without
  // this a killed server left the caller waiting for text that never comes. A normal exit is
  // not one: the request actor quits as it finishes, and its end reaches us on another path.
  self->monitor(service);
  self->set_down_handler([=](caf::down_msg& d) {
    if (!d.reason) return;
    auto& r = self->state.result;
    r.finish_reason = "error";
    r.error = "lost the server mid-request: " + self->system().render(d.reason);
    finish(r);
  });
  self->request(service, caf::infinite, std::move(request), caf::actor_cast<caf::actor>(self))
      .then(
          [=](request_actor& r) {
            self->state.request = r;
            self->monitor(r);
            if (self->state.cancel_wanted) caf::anon_send(r, cancel_atom::value);
          },
          [=](caf::error& e) {
            auto& r = self->state.result;
            r.finish_reason = "error";
            r.error = "the server did not take the request: " + self->system().render(e);
            finish(r);
          });
  return {
      [=](TextChunk& c) {
        auto& r = self->state.result;
        r.text += c.text;
        r.tokens.insert(r.tokens.end(), c.tokens.begin(), c.tokens.end());
        if (on_text && !c.text.empty()) on_text(c.text);
      },
      [=](RequestDone& d) {
        auto& r = self->state.result;
        r.finish_reason = d.finish_reason;
        r.error = d.error;
        r.prompt_tokens = d.prompt_tokens;
        r.llm_steps = d.llm_steps;
        r.accepted_per_step = d.accepted_per_step;
        finish(r);
      },
      [=](cancel_atom) {
        if (self->state.request)
          caf::anon_send(self->state.request, cancel_atom::value);
        else
          self->state.cancel_wanted = true;
      },
  };
}

caf::actor_system_config& client_config(caf::actor_system_config& config) {
  config.load<caf::io::middleman>();
  configure_actor_system(config);
  return config;
}

}  // namespace

struct Client::Impl {
  caf::actor_system_config config;
  caf::actor_system system{client_config(config)};
  text_service_actor service;
  std::mutex mutex;
  std::uint64_t next = 1;
  std::map<std::uint64_t, caf::actor> running;

  void forget(std::uint64_t id) {
    std::lock_guard lock(mutex);
    running.erase(id);
  }
};

Client::Client(const std::string& host, int port) : impl_(std::make_unique<Impl>()) {
  auto service = impl_->system.middleman().remote_actor<text_service_actor>(host, std::uint16_t(port));
  if (!service)
    throw ClientError("cannot reach a Banyan server at " + host + ":" + std::to_string(port) + ": " +
                      impl_->system.render(service.error()));
  impl_->service = std::move(*service);
}

Client::~Client() {
  std::map<std::uint64_t, caf::actor> left;
  {
    std::lock_guard lock(impl_->mutex);
    left.swap(impl_->running);
  }
  for (auto& [id, g] : left) caf::anon_send_exit(g, caf::exit_reason::user_shutdown);  // their requests cancel
  impl_->service = text_service_actor();
}

std::uint64_t Client::submit(const std::string& prompt, const GenerationParams& params, OnText on_text, OnDone on_done) {
  TextGenerateRequest r;
  r.prompt = prompt;
  r.params.max_new_tokens = params.max_new_tokens;
  r.params.temperature = params.temperature;
  r.params.top_p = params.top_p;
  r.params.top_k = params.top_k;
  r.params.seed = params.seed;
  r.params.speculate = params.speculate;
  std::lock_guard lock(impl_->mutex);  // the generation's end waits here until it is registered
  const std::uint64_t id = impl_->next++;
  OnDone done = [impl = impl_.get(), id, on_done = std::move(on_done)](const GenerationResult& result) {
    impl->forget(id);
    if (on_done) on_done(result);
  };
  impl_->running.emplace(id, impl_->system.spawn(generation, impl_->service, std::move(r), std::move(on_text), std::move(done)));
  return id;
}

void Client::cancel(std::uint64_t id) {
  std::lock_guard lock(impl_->mutex);
  if (auto it = impl_->running.find(id); it != impl_->running.end()) caf::anon_send(it->second, cancel_atom::value);
}

GenerationResult Client::generate(const std::string& prompt, const GenerationParams& params, OnText on_text,
                                  std::chrono::milliseconds timeout) {
  auto promise = std::make_shared<std::promise<GenerationResult>>();
  std::future<GenerationResult> result = promise->get_future();
  const std::uint64_t id =
      submit(prompt, params, std::move(on_text), [promise](const GenerationResult& r) { promise->set_value(r); });
  if (result.wait_for(timeout) == std::future_status::ready) return result.get();
  cancel(id);
  result.wait_for(std::chrono::seconds(10));  // its end, so no callback outlives this call
  throw ClientError("the generation did not end within " + std::to_string(timeout.count()) + " ms; it was cancelled");
}

}  // namespace banyan
