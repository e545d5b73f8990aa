#include "sockmesh/cli/meshctl.h"

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>

#include "sockmesh/cli/admin_client.h"
#include "sockmesh/cli/error.h"
#include "sockmesh/cli/output.h"
#include "sockmesh/cli/target.h"
#include "sockmesh/cli/views.h"

#ifndef SOCKMESH_VERSION
#error "SOCKMESH_VERSION must be defined by the build"
#endif

namespace sockmesh::cli {
namespace {

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
// What a shell reports for a command killed by SIGINT.
constexpr int kExitInterrupted = 130;
// An hour: longer is a mistake, and keeps the conversion to milliseconds far from overflow.
constexpr int kMaxTimeoutSeconds = 3600;

// Everything the command line sets.
struct Options {
  TargetOptions target;
  double timeout_seconds = 5;
  std::string output = "table";   // -o, --output of every command that prints data
  bool watch = false;             // `get services --watch`
  std::string endpoints_service;  // `get endpoints [SERVICE]`

  OutputFormat format() const { return *parse_output_format(output); }
};

std::chrono::milliseconds timeout_of(const Options &options) {
  return std::chrono::milliseconds(
      static_cast<std::int64_t>(std::ceil(options.timeout_seconds * 1000)));
}

CLI::Validator positive_seconds() {
  return CLI::Validator(
      [](std::string &text) -> std::string {
        double value = 0;
        if (!CLI::detail::lexical_cast(text, value) ||
            !(value > 0 && value <= kMaxTimeoutSeconds)) {
          return fmt::format("must be a number of seconds > 0 and <= {}, got \"{}\"",
                             kMaxTimeoutSeconds, text);
        }
        return {};
      },
      "");
}

CLI::Validator output_format() {
  return CLI::Validator(
      [](std::string &text) -> std::string {
        if (parse_output_format(text)) return {};
        return fmt::format("must be one of table, json, yaml, got \"{}\"", text);
      },
      "");
}

AdminClient connect(const Options &options, const Environment &env) {
  return AdminClient(resolve_target(options.target, env.run_root), timeout_of(options),
                     env.interrupted);
}

void print_document(std::ostream &out, OutputFormat format,
                    const google::protobuf::Message &message, DocumentLayout layout) {
  out << (format == OutputFormat::json ? json_document(message, layout)
                                       : yaml_document(message, layout));
}

// Prints a list, or "No <plural>." when it is empty.
void print_list(std::ostream &out, const Table &table, std::string_view plural) {
  if (table.empty()) {
    out << "No " << plural << ".\n";
    return;
  }
  table.render(out);
}

void cmd_status(const Options &options, const Environment &env, std::ostream &out) {
  auto status = connect(options, env).get_status();
  if (options.format() == OutputFormat::table) {
    out << render_status(status, env.now_unix_ms ? env.now_unix_ms() : system_now_unix_ms());
    return;
  }
  // An agent with no config yet leaves it unset; documents keep one shape.
  status.mutable_config();
  print_document(out, options.format(), status, DocumentLayout::single);
}

void cmd_get_services(const Options &options, const Environment &env, std::ostream &out) {
  const auto services = services_in_order(connect(options, env).list_services());
  if (options.format() == OutputFormat::table)
    return print_list(out, services_table(services), "services");
  print_document(out, options.format(), services, DocumentLayout::single);
}

// One update of `get services --watch`, flushed so that a pipe sees it at once.
void print_services_update(const Options &options, const v1::ListServicesResponse &update,
                           bool first, std::ostream &out) {
  const auto services = services_in_order(update);
  if (options.format() == OutputFormat::table) {
    if (!first) out << '\n';
    out << "# generation " << services.generation() << '\n';
    print_list(out, services_table(services), "services");
  } else {
    print_document(out, options.format(), services, DocumentLayout::stream);
  }
  out.flush();
}

void cmd_watch_services(const Options &options, const Environment &env, std::ostream &out) {
  bool first = true;
  connect(options, env).watch_services([&](const v1::ListServicesResponse &update) {
    print_services_update(options, update, first, out);
    first = false;
  });
}

void cmd_get_endpoints(const Options &options, const Environment &env, std::ostream &out) {
  std::optional<ServiceFilter> filter;
  if (!options.endpoints_service.empty()) filter = ServiceFilter::parse(options.endpoints_service);
  auto client = connect(options, env);
  const auto endpoints = client.list_endpoints();
  if (filter) {
    // A typo must not look like a service without endpoints.
    const auto services = client.list_services();
    const bool known =
        std::any_of(services.services().begin(), services.services().end(),
                    [&](const auto &s) { return filter->matches(s.namespace_(), s.name()); });
    if (!known) throw CliError(fmt::format("{} not found", filter->describe()));
  }
  const auto selected = endpoints_in_order(endpoints, filter);
  if (options.format() == OutputFormat::table)
    return print_list(out, endpoints_table(selected), "endpoints");
  print_document(out, options.format(), selected, DocumentLayout::single);
}

void cmd_version(std::ostream &out) {
  out << "meshctl " << SOCKMESH_VERSION << '\n';
}

// CLI11 is told commands are optional so that require_command() can name the choices; the usage
// line must still show that one is required.
class UsageFormatter : public CLI::Formatter {
 public:
  UsageFormatter() { label("SUBCOMMAND", "COMMAND"); }
  std::string make_usage(const CLI::App *app, std::string name) const override {
    std::string usage = CLI::Formatter::make_usage(app, std::move(name));
    constexpr std::string_view kOptional = "[COMMAND]";
    if (const auto at = usage.find(kOptional); at != std::string::npos)
      usage.replace(at, kOptional.size(), "COMMAND");
    return usage;
  }
};

// The whole command tree. Its help text is generated from these declarations, so it cannot drift.
struct CommandLine {
  CLI::App app{"meshctl: the sockmesh operator's CLI, a client of a node agent's admin API.",
               "meshctl"};
  CLI::App *status = nullptr;
  CLI::App *get = nullptr;
  CLI::App *get_services = nullptr;
  CLI::App *get_endpoints = nullptr;
  CLI::App *version = nullptr;

  explicit CommandLine(Options &options) {
    app.footer(
        "Without --node or --admin-socket, meshctl uses the only node agent whose socket exists "
        "under "
        "/run/sockmesh.\n"
        "Exit codes: 0 success, 1 failure (one line on stderr starting \"meshctl: \"), 2 usage "
        "error, 130 "
        "interrupted.");
    app.formatter(std::make_shared<UsageFormatter>());
    // At most one command; missing_command() names the choices when there is none.
    app.require_subcommand(0, 1);
    app.fallthrough();
    auto *node =
        app.add_option("--node", options.target.node,
                       "Talk to the agent of node NAME (socket /run/sockmesh/NAME/admin.sock)")
            ->type_name("NAME");
    app.add_option("--admin-socket", options.target.admin_socket,
                   "Talk to the agent listening on this unix socket")
        ->type_name("PATH")
        ->excludes(node);
    app.add_option("--timeout", options.timeout_seconds,
                   fmt::format("Seconds (> 0, <= {}) to wait for each answer of the agent",
                               kMaxTimeoutSeconds))
        ->type_name("SECONDS")
        ->check(positive_seconds())
        ->capture_default_str();

    status = app.add_subcommand("status",
                                "Agent health, config generation, programs, maps and counters");
    get = app.add_subcommand("get", "List resources as the node agent applied them");
    get->require_subcommand(0, 1);
    get_services = get->add_subcommand(
        "services", "Services: VIPs, load-balancing policy, usable/listed endpoints");
    get_services->alias("svc");
    get_services->add_flag(
        "-w,--watch", options.watch,
        "Print the services again after every config change the agent applies, until Ctrl-C");
    get_endpoints = get->add_subcommand(
        "endpoints", "Endpoints of every service, with the kernel's weight and traffic share");
    get_endpoints->alias("ep");
    get_endpoints
        ->add_option("SERVICE", options.endpoints_service,
                     "Only this service: NAMESPACE/NAME, or NAME in any namespace")
        ->type_name("");
    version = app.add_subcommand("version", "Print meshctl's version");
    for (auto *command : {status, get_services, get_endpoints}) {
      command
          ->add_option("-o,--output", options.output,
                       "Output format: table, json (protobuf's JSON mapping of the answer) or yaml "
                       "(the same tree)")
          ->type_name("FORMAT")
          ->check(output_format())
          ->capture_default_str();
    }
    for (auto *parent : {&app, get}) {
      for (auto *sub : parent->get_subcommands({})) sub->group("Commands");
    }
  }

  // CLI11 reports a missing subcommand without naming the choices; this names them.
  void require_command() const {
    const auto missing = [](const CLI::App &parent) {
      std::vector<std::string> names;
      for (const auto *sub : parent.get_subcommands({})) names.push_back(sub->get_name());
      const std::string where = parent.get_parent() ? fmt::format("{}: ", parent.get_name()) : "";
      return CLI::ParseError(
          fmt::format("{}missing command, one of: {}", where, fmt::join(names, ", ")),
          CLI::ExitCodes::RequiredError);
    };
    if (app.get_subcommands().empty()) throw missing(app);
    if (get->parsed() && get->get_subcommands().empty()) throw missing(*get);
  }

  void dispatch(const Options &options, const Environment &env, std::ostream &out) const {
    if (status->parsed()) return cmd_status(options, env, out);
    if (get_services->parsed()) {
      return options.watch ? cmd_watch_services(options, env, out)
                           : cmd_get_services(options, env, out);
    }
    if (get_endpoints->parsed()) return cmd_get_endpoints(options, env, out);
    if (version->parsed()) return cmd_version(out);
  }
};

// CLI11 prints usage errors on two lines; meshctl keeps every error to one.
int usage_error(const CLI::App &app, const CLI::ParseError &e, std::ostream &out,
                std::ostream &err) {
  if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e, out, err);
  err << "meshctl: " << e.what() << " (see meshctl --help)\n";
  return kExitUsage;
}

}  // namespace

std::int64_t system_now_unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int run_meshctl(const std::vector<std::string> &args, std::ostream &out, std::ostream &err,
                const Environment &env) {
  Options options;
  CommandLine command_line(options);
  try {
    // CLI11 consumes a vector from its back.
    std::vector<std::string> reversed(args.rbegin(), args.rend());
    command_line.app.parse(reversed);
    command_line.require_command();
  } catch (const CLI::ParseError &e) {
    return usage_error(command_line.app, e, out, err);
  }
  try {
    command_line.dispatch(options, env, out);
  } catch (const CliError &e) {
    out.flush();
    err << "meshctl: " << e.what() << '\n';
    return kExitFailure;
  } catch (const Interrupted &) {
    return kExitInterrupted;
  }
  return 0;
}

}  // namespace sockmesh::cli
