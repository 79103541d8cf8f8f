#include "transport/call_bio.h"

#include <openssl/bio.h>

#include <algorithm>
#include <cstring>

#include "base/assert.h"

namespace coremq::transport {

namespace {

CallWindow* window_of(BIO* bio) { return static_cast<CallWindow*>(BIO_get_data(bio)); }

int read(BIO* bio, char* out, size_t size, size_t* read_bytes) {
  CallWindow* window = window_of(bio);
  BIO_clear_retry_flags(bio);
  *read_bytes = 0;
  if (window->input_size == 0) {
    BIO_set_retry_read(bio);
    return 0;
  }
  size_t count = std::min(size, window->input_size);
  std::memcpy(out, window->input, count);
  window->input += count;
  window->input_size -= count;
  *read_bytes = count;
  return 1;
}

int write(BIO* bio, const char* data, size_t size, size_t* written) {
  CallWindow* window = window_of(bio);
  BIO_clear_retry_flags(bio);
  *written = 0;
  // OpenSSL writes only inside a transport call, which sets the output first.
  if (window->output == nullptr) return 0;
  window->output->append(data, size);
  *written = size;
  return 1;
}

long control(BIO*, int command, long, void*) {
  // Flush is a no-op (output is already in the caller's buffer); everything else (pending
  // counts, kTLS queries, push/pop) is "not supported" for OpenSSL.
  return command == BIO_CTRL_FLUSH ? 1 : 0;
}

int create(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

// One method for the process, made on first use (a thread-safe static) and never freed.
BIO_METHOD* method() {
  static BIO_METHOD* const made = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "coremq call window");
    COREMQ_ASSERT_MSG(m != nullptr, "out of memory");
    BIO_meth_set_read_ex(m, read);
    BIO_meth_set_write_ex(m, write);
    BIO_meth_set_ctrl(m, control);
    BIO_meth_set_create(m, create);
    return m;
  }();
  return made;
}

}  // namespace

BIO* new_call_bio(OSSL_LIB_CTX* library_context, CallWindow* window) {
  BIO* bio = BIO_new_ex(library_context, method());
  if (bio != nullptr) BIO_set_data(bio, window);
  return bio;
}

}  // namespace coremq::transport
