#include "testkit/http_client.hpp"

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without it under C++20

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <stdexcept>

namespace banyan::testkit {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

void connect(beast::tcp_stream& stream, asio::io_context& io, const std::string& host, int port,
             std::chrono::milliseconds timeout) {
  tcp::resolver resolver(io);
  stream.expires_after(timeout);
  stream.connect(resolver.resolve(host, std::to_string(port)));
}

[[noreturn]] void fail(const std::string& what, const beast::error_code& ec) {
  throw std::runtime_error(what + ": " + ec.message());
}

}  // namespace

HttpResponse http_request(const std::string& host, int port, const std::string& method, const std::string& target,
                          const std::string& body, const std::string& api_key, std::chrono::milliseconds timeout) {
  asio::io_context io;
  beast::tcp_stream stream(io);
  connect(stream, io, host, port, timeout);
  http::request<http::string_body> req(http::string_to_verb(method), target, 11);
  req.set(http::field::host, host);
  if (!api_key.empty()) req.set(http::field::authorization, "Bearer " + api_key);
  if (!body.empty()) req.set(http::field::content_type, "application/json");
  req.body() = body;
  req.prepare_payload();
  http::write(stream, req);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 << 20);
  beast::error_code ec;
  http::read(stream, buffer, parser, ec);
  if (ec) fail(method + " " + target, ec);
  HttpResponse out;
  out.status = int(parser.get().result_int());
  out.content_type = std::string(parser.get()[http::field::content_type]);
  out.body = std::move(parser.get().body());
  stream.socket().shutdown(tcp::socket::shutdown_both, ec);
  return out;
}

std::string raw_exchange(const std::string& host, int port, const std::string& bytes, std::chrono::milliseconds timeout) {
  asio::io_context io;
  beast::tcp_stream stream(io);
  connect(stream, io, host, port, timeout);
  asio::write(stream, asio::buffer(bytes));
  stream.socket().shutdown(tcp::socket::shutdown_send);
  std::string out;
  beast::error_code ec;
  char chunk[4096];
  for (;;) {
    const std::size_t n = stream.read_some(asio::buffer(chunk), ec);
    out.append(chunk, n);
    if (ec) break;
  }
  if (ec == beast::error::timeout) fail("raw exchange", ec);
  return out;
}

std::vector<std::string> sse_events(const std::string& body) {
  std::vector<std::string> events;
  std::size_t at = 0;
  while (at < body.size()) {
    const std::size_t end = std::min(body.find('\n', at), body.size());
    const std::string line = body.substr(at, end - at);
    if (line.rfind("data: ", 0) == 0) events.push_back(line.substr(6));
    at = end + 1;
  }
  return events;
}

struct WebSocket::Impl {
  asio::io_context io;
  websocket::stream<beast::tcp_stream> ws{io};
  beast::flat_buffer buffer;
};

WebSocket::WebSocket(const std::string& host, int port, const std::string& target, const std::string& api_key)
    : impl_(std::make_unique<Impl>()) {
  connect(beast::get_lowest_layer(impl_->ws), impl_->io, host, port, 30s);
  impl_->ws.set_option(websocket::stream_base::decorator([api_key](websocket::request_type& req) {
    if (!api_key.empty()) req.set(http::field::authorization, "Bearer " + api_key);
  }));
  websocket::response_type res;
  beast::error_code ec;
  impl_->ws.handshake(res, host + ":" + std::to_string(port), target, ec);
  if (ec) throw std::runtime_error("websocket refused with HTTP " + std::to_string(res.result_int()) + ": " + res.body());
  beast::get_lowest_layer(impl_->ws).expires_never();
  impl_->ws.text(true);
}

WebSocket::~WebSocket() = default;

void WebSocket::send(const std::string& text) {
  beast::get_lowest_layer(impl_->ws).expires_after(30s);
  impl_->ws.write(asio::buffer(text));
}

std::string WebSocket::receive(std::chrono::milliseconds timeout) {
  beast::get_lowest_layer(impl_->ws).expires_after(timeout);
  beast::error_code ec;
  impl_->buffer.consume(impl_->buffer.size());
  impl_->ws.read(impl_->buffer, ec);
  if (ec) fail("websocket read", ec);
  return beast::buffers_to_string(impl_->buffer.data());
}

void WebSocket::close() {
  beast::error_code ec;
  beast::get_lowest_layer(impl_->ws).expires_after(5s);
  impl_->ws.close(websocket::close_code::normal, ec);
}

}  // namespace banyan::testkit
