#include "actors/text_service.hpp"

#include <optional>

#include "actors/request.hpp"

namespace banyan::actors {

namespace {

struct RelayState {
  RelayState() = default;  // user-declared: CAF 0.17 under C++20 (docs/dependencies.md)
  std::optional<StreamDecoder> text;
};

// Between a request actor and a remote client: adds the text to each TokenChunk. Ends when the
// client does (its request actor then cancels the generation).
caf::behavior text_relay(caf::stateful_actor<RelayState>* self, caf::actor client, const Tokenizer* tokenizer) {
  self->state.text.emplace(*tokenizer, StreamDecoder::Start::after_prompt);
  self->monitor(client);
  self->set_down_handler([=](caf::down_msg&) { self->quit(); });
  return {
      [=](TokenChunk& c) {
        TextChunk t{c.request, "", std::move(c.tokens)};
        for (auto id : t.tokens) t.text += self->state.text->push(id);
        self->send(client, std::move(t));
      },
      [=](RequestDone& d) {
        if (std::string rest = self->state.text->finish(); !rest.empty()) self->send(client, TextChunk{d.request, rest, {}});
        self->send(client, std::move(d));
        self->quit();
      },
  };
}

text_service_actor::behavior_type text_service(text_service_actor::pointer self, scheduler_actor scheduler,
                                               const Tokenizer* tokenizer) {
  return {
      [=](TextGenerateRequest& r, caf::actor client) -> request_actor {
        GenerateRequest g = std::move(r.params);
        g.prompt = tokenizer->encode(r.prompt);
        auto relay = self->system().spawn(text_relay, std::move(client), tokenizer);
        return spawn_request(self->system(), scheduler, std::move(g), relay);
      },
  };
}

}  // namespace

text_service_actor spawn_text_service(caf::actor_system& system, scheduler_actor scheduler, const Tokenizer& tokenizer) {
  return system.spawn(text_service, std::move(scheduler), &tokenizer);
}

}  // namespace banyan::actors
