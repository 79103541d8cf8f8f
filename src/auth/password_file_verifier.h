// The password checker's view of a loaded password file (see password_checker.h): a client
// that names a user of the file and gives that user's password is accepted; a user the file
// does not have, a wrong password or no password at all is refused, as Mosquitto refuses them.
// An empty password counts as none: Mosquitto reads a zero-length password field as absent, so
// a user whose password is "" can never log in there, and must not here either.
// Checker threads only (verify hashes).
#pragma once

#include <memory>

#include "auth/password_checker.h"
#include "auth/password_file.h"

namespace coremq::auth {

class PasswordFileVerifier final : public PasswordVerifier {
 public:
  explicit PasswordFileVerifier(std::shared_ptr<const PasswordFile> file) : file_(std::move(file)) {}
  bool verify(std::string_view username, bool has_password, std::string_view password) const override {
    return has_password && !password.empty() &&
           file_->verify(username, password) == PasswordFile::Result::kAccepted;
  }

 private:
  std::shared_ptr<const PasswordFile> file_;
};

}  // namespace coremq::auth
