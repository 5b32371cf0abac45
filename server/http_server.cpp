#include "server/http_server.hpp"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <csignal>
#include <deque>
#include <iostream>
#include <sstream>

#include "model/error.hpp"

namespace banyan::server {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kMaxMessage = 1 << 20;  // request bodies and websocket frames
constexpr auto kIdleTimeout = std::chrono::seconds(60);

// Writes not yet finished, all sessions together: a graceful stop waits for them to reach the wire.
using WriteCount = int;

class WebsocketSession : public FrameSink, public std::enable_shared_from_this<WebsocketSession> {
 public:
  WebsocketSession(tcp::socket socket, Gateway& gateway, WriteCount& writing)
      : ws_(std::move(socket)), gateway_(gateway), writing_(writing) {}

  void run(http::request<http::string_body> request) {
    ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
    ws_.read_message_max(kMaxMessage);
    ws_.text(true);
    ws_.async_accept(request, [self = shared_from_this()](beast::error_code ec) {
      if (ec) return;
      self->connection_ = self->gateway_.open_stream(self->weak_from_this());
      self->read();
    });
  }

  void send(std::string frame) override {
    if (closed_) return;
    queue_.push_back(std::move(frame));
    if (queue_.size() == 1) write();
  }

 private:
  void read() {
    ws_.async_read(buffer_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->close();
      self->connection_->on_frame(beast::buffers_to_string(self->buffer_.data()));
      self->buffer_.consume(self->buffer_.size());
      self->read();
    });
  }

  void write() {
    ++writing_;
    ws_.async_write(asio::buffer(queue_.front()), [self = shared_from_this()](beast::error_code ec, std::size_t) {
      --self->writing_;
      if (ec) return self->close();
      self->queue_.pop_front();
      if (!self->queue_.empty()) self->write();
    });
  }

  // The peer left (or the socket failed): its generations are cancelled, nothing more is sent.
  void close() {
    if (closed_) return;
    closed_ = true;
    queue_.clear();
    if (connection_) connection_->on_close();
  }

  websocket::stream<beast::tcp_stream> ws_;
  Gateway& gateway_;
  WriteCount& writing_;
  beast::flat_buffer buffer_;
  std::shared_ptr<Gateway::Connection> connection_;
  std::deque<std::string> queue_;
  bool closed_ = false;
};

class HttpSession : public Exchange, public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(tcp::socket socket, Gateway& gateway, WriteCount& writing)
      : stream_(std::move(socket)), gateway_(gateway), writing_(writing) {}

  void run() { read(); }

  void reply(int status, const std::string& content_type, std::string body) override {
    auto res = std::make_shared<http::response<http::string_body>>(http::int_to_status(unsigned(status)), 11);
    res->set(http::field::server, "banyan");
    res->set(http::field::content_type, content_type);
    res->keep_alive(keep_alive_);
    res->body() = std::move(body);
    res->prepare_payload();
    ++writing_;
    http::async_write(stream_, *res, [self = shared_from_this(), res](beast::error_code ec, std::size_t) {
      --self->writing_;
      if (ec || !self->keep_alive_) return self->shut();
      self->read();
    });
  }

  // The header now, then the body in pieces until close_stream; the end of the connection
  // ends the body (no length is known in advance).
  void open_stream(const std::string& content_type) override {
    http::response<http::empty_body> res(http::status::ok, 11);
    res.set(http::field::server, "banyan");
    res.set(http::field::content_type, content_type);
    res.set(http::field::cache_control, "no-cache");
    res.keep_alive(false);
    std::ostringstream head;
    head << res.base();
    push(head.str());
  }
  void write(std::string piece) override {
    if (!gone_) push(std::move(piece));
  }
  void close_stream() override {
    closing_ = true;
    if (queue_.empty()) shut();
  }

 private:
  void read() {
    parser_.emplace();
    parser_->body_limit(kMaxMessage);
    stream_.expires_after(kIdleTimeout);
    http::async_read(stream_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      self->on_read(ec);
    });
  }

  void on_read(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == asio::error::connection_reset ||
        ec == asio::error::eof || ec == asio::error::operation_aborted)
      return shut();
    keep_alive_ = false;
    if (ec) {  // not HTTP: say so, then hang up
      stream_.expires_never();
      return reply(400, "application/json",
                   error_body(ApiError(400, "bad_request", "malformed HTTP request: " + ec.message())).dump());
    }
    http::request<http::string_body> req = parser_->release();
    keep_alive_ = req.keep_alive();
    const std::string target(req.target()), authorization(req[http::field::authorization]);
    stream_.expires_never();  // an answer may take as long as a generation
    if (websocket::is_upgrade(req)) {
      if (auto refusal = gateway_.stream_refusal(target, authorization)) {
        keep_alive_ = false;
        return reply(refusal->status, "application/json", error_body(*refusal).dump());
      }
      std::make_shared<WebsocketSession>(stream_.release_socket(), gateway_, writing_)->run(std::move(req));
      return;
    }
    gateway_.handle({std::string(req.method_string()), target, std::move(req.body()), authorization},
                    shared_from_this());
  }

  void push(std::string s) {
    queue_.push_back(std::move(s));
    if (queue_.size() == 1) write_front();
  }
  void write_front() {
    ++writing_;
    asio::async_write(stream_, asio::buffer(queue_.front()), [self = shared_from_this()](beast::error_code ec, std::size_t) {
      --self->writing_;
      if (ec) return self->abandoned();
      self->queue_.pop_front();
      if (!self->queue_.empty()) return self->write_front();
      if (self->closing_) self->shut();
    });
  }
  // The client went away mid-stream: whoever produces the stream is told, once.
  void abandoned() {
    gone_ = true;
    queue_.clear();
    if (auto f = std::move(on_abandon)) {
      on_abandon = nullptr;
      f();
    }
    shut();
  }
  void shut() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
  }

  beast::tcp_stream stream_;
  Gateway& gateway_;
  WriteCount& writing_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::deque<std::string> queue_;
  bool keep_alive_ = false;
  bool closing_ = false;
  bool gone_ = false;
};

}  // namespace

struct HttpServer::Impl {
  asio::io_context io{1};
  tcp::acceptor acceptor{io};
  asio::signal_set signals{io, SIGINT, SIGTERM};
  asio::steady_timer drain_timer{io};
  Gateway* gateway = nullptr;
  WriteCount writing = 0;
  std::chrono::milliseconds grace{0};
  Clock::time_point deadline;
  bool stopping = false, cancelled = false;

  void accept() {
    acceptor.async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (!acceptor.is_open()) return;
      if (!ec) std::make_shared<HttpSession>(std::move(socket), *gateway, writing)->run();
      accept();
    });
  }

  void begin_stop() {
    if (stopping) return;
    stopping = true;
    beast::error_code ignored;
    acceptor.close(ignored);
    signals.cancel();
    gateway->begin_shutdown();
    std::cerr << "banyan serve: stopping: " << gateway->running() << " request(s) running, waiting up to "
              << double(grace.count()) / 1000 << " s for them\n";
    deadline = Clock::now() + grace;
    drain();
  }

  // Waits for the running generations and their last words on the wire; past the grace period
  // cancels them, and gives the runtime a few more seconds to confirm before giving up on it.
  void drain() {
    if (gateway->running() == 0 && writing == 0) return io.stop();
    if (Clock::now() >= deadline) {
      if (cancelled) {
        std::cerr << "banyan serve: " << gateway->running() << " request(s) did not end; stopping anyway\n";
        return io.stop();
      }
      std::cerr << "banyan serve: cancelling " << gateway->running() << " request(s)\n";
      cancelled = true;
      gateway->cancel_all();
      deadline = Clock::now() + std::chrono::seconds(5);
    }
    drain_timer.expires_after(std::chrono::milliseconds(20));
    drain_timer.async_wait([this](beast::error_code) { drain(); });
  }
};

HttpServer::HttpServer(const std::string& host, int port) : impl_(std::make_unique<Impl>()) {
  const std::string where = host + ":" + std::to_string(port);
  try {
    tcp::resolver resolver(impl_->io);
    const tcp::endpoint endpoint = *resolver.resolve(host, std::to_string(port)).begin();
    auto& a = impl_->acceptor;
    a.open(endpoint.protocol());
    a.set_option(asio::socket_base::reuse_address(true));
    a.bind(endpoint);
    a.listen(asio::socket_base::max_listen_connections);
  } catch (const boost::system::system_error& e) {
    throw Error("cannot listen on " + where + ": " + e.code().message());
  }
}

HttpServer::~HttpServer() = default;

int HttpServer::port() const { return impl_->acceptor.local_endpoint().port(); }

Gateway::Post HttpServer::poster() {
  return [io = &impl_->io](std::function<void()> f) { asio::post(*io, std::move(f)); };
}

void HttpServer::serve(Gateway& gateway, std::chrono::milliseconds grace, const std::function<void()>& on_listening) {
  impl_->gateway = &gateway;
  impl_->grace = grace;
  impl_->accept();
  impl_->signals.async_wait([this](beast::error_code ec, int signal) {
    if (ec) return;
    std::cerr << "banyan serve: " << (signal == SIGTERM ? "SIGTERM" : "SIGINT") << " received\n";
    impl_->begin_stop();
  });
  on_listening();
  impl_->io.run();
}

void HttpServer::stop() {
  asio::post(impl_->io, [impl = impl_.get()] { impl->begin_stop(); });
}

}  // namespace banyan::server
