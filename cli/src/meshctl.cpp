#include "sockmesh/cli/meshctl.h"

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <optional>

#include "sockmesh/cli/admin_client.h"
#include "sockmesh/cli/controlplane_client.h"
#include "sockmesh/cli/controlplane_views.h"
#include "sockmesh/cli/error.h"
#include "sockmesh/cli/fastpath_views.h"
#include "sockmesh/cli/format.h"
#include "sockmesh/cli/manifest.h"
#include "sockmesh/cli/observe_views.h"
#include "sockmesh/cli/output.h"
#include "sockmesh/cli/policy_views.h"
#include "sockmesh/cli/resilience_views.h"
#include "sockmesh/cli/target.h"
#include "sockmesh/cli/views.h"

#ifndef SOCKMESH_VERSION
#error "SOCKMESH_VERSION must be defined by the build"
#endif

namespace sockmesh::cli {
namespace {

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
// `check`: the connection would be denied.
constexpr int kExitDenied = 3;
// What a shell reports for a command killed by SIGINT.
constexpr int kExitInterrupted = 130;
// An hour: longer is a mistake, and keeps the conversion to milliseconds far from overflow.
constexpr int kMaxTimeoutSeconds = 3600;

// Everything the command line sets.
struct Options {
  TargetOptions target;
  double timeout_seconds = 5;
  std::string output = "table";                   // -o, --output of every command that prints data
  bool watch = false;                             // `get services --watch`
  std::string endpoints_service;                  // `get endpoints [SERVICE]`
  std::string controlplane{kControlPlaneSocket};  // --controlplane
  std::vector<std::string> files;                 // `apply -f`, `delete -f`
  bool dry_run = false;                           // `apply --dry-run`
  std::string kind;                               // `delete KIND NAME...`
  std::vector<std::string> names;                 // `delete KIND NAME...`, `describe service NAME`
  std::string ns;                                 // -n of `delete` and `describe`
  bool from_controlplane = false;                 // `get services --from-controlplane`
  std::string trust_domain{"cluster.local"};      // `check`, `describe workload`
  std::string check_source;                       // `check SRC`
  std::string check_destination;                  // `check DST:PORT`
  std::string node_name;                          // `node add NAME`, `get identities --for-node`
  std::int64_t token_ttl_seconds = 0;             // `node add --ttl`
  std::string map_name;                           // `bpf dump MAP`
  std::uint32_t dump_limit = 0;                   // `bpf dump --limit`; 0: the agent's 1000
  double stats_interval_seconds = 2;              // `stats --interval`
  std::size_t stats_top = 10;                     // `stats --top`
  bool stats_once = false;                        // `stats --once`
  bool fast_path_sockets = false;                 // `fastpath --sockets`
  std::string resilience_service;                 // `resilience [SERVICE]`

  OutputFormat format() const { return *parse_output_format(output); }
};

std::chrono::milliseconds timeout_of_seconds(double seconds) {
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::ceil(seconds * 1000)));
}

std::chrono::milliseconds timeout_of(const Options &options) {
  return timeout_of_seconds(options.timeout_seconds);
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

// A SPIFFE trust domain: lowercase letters, digits, '.', '-' and '_', at most 255 characters.
CLI::Validator trust_domain_name() {
  return CLI::Validator(
      [](std::string &text) -> std::string {
        const bool ok = !text.empty() && text.size() <= 255 &&
                        std::all_of(text.begin(), text.end(), [](char c) {
                          return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
                                 c == '-' || c == '_';
                        });
        if (ok) return {};
        return fmt::format(
            "must be a trust domain (lowercase letters, digits, '.', '-' and '_'), got \"{}\"",
            text);
      },
      "");
}

AdminClient connect(const Options &options, const Environment &env) {
  return AdminClient(resolve_target(options.target, env.run_root), timeout_of(options),
                     env.interrupted);
}

ControlPlaneClient connect_controlplane(const Options &options, const Environment &env) {
  return ControlPlaneClient(options.controlplane, timeout_of(options), env.interrupted);
}

std::int64_t now_of(const Environment &env) {
  return env.now_unix_ms ? env.now_unix_ms() : system_now_unix_ms();
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
    out << render_status(status, now_of(env));
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

// "1 created, 2 configured, 0 unchanged".
std::string apply_counts(const v1::ApplyResponse &response) {
  return fmt::format("{} created, {} configured, {} unchanged", response.created(),
                     response.configured(), response.unchanged());
}

void cmd_apply(const Options &options, const Environment &env, std::ostream &out) {
  // Every file is read and checked before meshcp is called: an invalid one sends nothing.
  const auto resources = load_manifests(manifest_files(options.files));
  if (resources.empty()) {
    throw CliError(
        fmt::format("nothing to apply: {} define no resource", fmt::join(options.files, ", ")));
  }
  auto client = connect_controlplane(options, env);
  // meshcp answers with counts only; the state before the change tells each resource's outcome.
  const auto current = by_name(client.list(""));
  v1::ApplyRequest request;
  request.set_dry_run(options.dry_run);
  for (const auto &resource : resources) *request.add_resources() = resource;
  const auto response = client.apply(request);
  const std::string_view dry_run = options.dry_run ? " (dry run)" : "";
  for (const auto &resource : resources)
    out << resource.name() << ' ' << apply_outcome(resource, current) << dry_run << '\n';
  if (options.dry_run) {
    out << "dry run: " << apply_counts(response) << "; nothing was applied\n";
  } else {
    out << apply_counts(response) << ": the control plane is at version " << response.version()
        << '\n';
  }
}

// The resource names a delete means, each once, in the order given.
std::vector<std::string> names_to_delete(const Options &options) {
  std::vector<std::string> names;
  if (!options.files.empty()) {
    for (const auto &resource : load_manifests(manifest_files(options.files)))
      names.push_back(resource.name());
  } else {
    for (const auto &name : options.names)
      names.push_back(named_resource(options.kind, name, options.ns));
  }
  std::vector<std::string> unique;
  for (auto &name : names) {
    if (std::find(unique.begin(), unique.end(), name) == unique.end())
      unique.push_back(std::move(name));
  }
  return unique;
}

void cmd_delete(const Options &options, const Environment &env, std::ostream &out) {
  const auto names = names_to_delete(options);
  if (names.empty()) throw CliError("nothing to delete: the files define no resource");
  auto client = connect_controlplane(options, env);
  // A typo must not look like a deletion.
  const auto current = by_name(client.list(""));
  std::vector<std::string> missing;
  for (const auto &name : names) {
    if (!current.contains(name)) missing.push_back(name);
  }
  if (!missing.empty()) {
    throw CliError(
        fmt::format("not in the control plane: {}; nothing was deleted", fmt::join(missing, ", ")));
  }
  const auto response = client.remove(names);
  for (const auto &name : names) out << name << " deleted\n";
  out << response.deleted() << " deleted: the control plane is at version " << response.version()
      << '\n';
}

// A List answer sorted by name, as a table or a document.
void print_resources(const Options &options, const v1::ListResponse &list,
                     const std::function<Table(const v1::ListResponse &)> &table,
                     std::string_view plural, std::ostream &out) {
  const auto sorted = resources_in_order(list);
  if (options.format() == OutputFormat::table) return print_list(out, table(sorted), plural);
  print_document(out, options.format(), sorted, DocumentLayout::single);
}

void cmd_get_workloads(const Options &options, const Environment &env, std::ostream &out) {
  print_resources(options, connect_controlplane(options, env).list("workload"), workloads_table,
                  "workloads", out);
}

void cmd_get_nodes(const Options &options, const Environment &env, std::ostream &out) {
  auto client = connect_controlplane(options, env);
  const auto nodes = client.list("node");
  if (options.format() != OutputFormat::table)
    return print_resources(options, nodes, {}, "nodes", out);
  const auto status = client.get_status();
  print_resources(
      options, nodes, [&](const v1::ListResponse &sorted) { return nodes_table(sorted, status); },
      "nodes", out);
}

void cmd_get_desired_services(const Options &options, const Environment &env, std::ostream &out) {
  print_resources(options, connect_controlplane(options, env).list("service"),
                  desired_services_table, "services", out);
}

// The resilience part of `describe service`: the node agent's view of the service, or one line
// saying why there is none. The service is meshcp's; the agent is optional, so its failures do not
// fail the command (Ctrl-C still does).
std::string describe_resilience(const Options &options, const Environment &env,
                                const std::string &ns, const std::string &name) {
  v1::ResilienceReport report;
  std::string node;
  try {
    const AdminTarget target = resolve_target(options.target, env.run_root);
    node = target.node;
    report = AdminClient(target, timeout_of(options), env.interrupted).get_resilience(ns, name);
  } catch (const CliError &e) {
    return fmt::format("\n{}", field_line("Resilience", fmt::format("unavailable: {}", e.what())));
  }
  if (!report.node().empty()) node = report.node();
  const std::string where = node.empty() ? "Resilience on this node" : "Resilience on node " + node;
  if (report.services().empty()) {
    return fmt::format("\n{}: not tracked (no TCP VIP: resilience decides TCP connects)\n", where);
  }
  return fmt::format("\n{}:\n{}", where, render_service_resilience(report.services(0)));
}

void cmd_describe_service(const Options &options, const Environment &env, std::ostream &out) {
  const std::string name = named_resource("service", options.names.front(), options.ns);
  auto client = connect_controlplane(options, env);
  const auto services = by_name(client.list("service"));
  const auto it = services.find(name);
  if (it == services.end()) throw CliError(fmt::format("{} not in the control plane", name));
  out << render_service(it->second, client.list("workload"), client.get_status());
  // named_resource gives "service/NAMESPACE/NAME".
  const auto ns_begin = name.find('/') + 1, name_begin = name.find('/', ns_begin) + 1;
  out << describe_resilience(options, env, name.substr(ns_begin, name_begin - ns_begin - 1),
                             name.substr(name_begin));
}

void cmd_node_add(const Options &options, const Environment &env, std::ostream &out) {
  const auto added =
      connect_controlplane(options, env).add_node(options.node_name, options.token_ttl_seconds);
  if (options.format() == OutputFormat::table)
    return void(out << render_node_added(options.node_name, added));
  print_document(out, options.format(), added, DocumentLayout::single);
}

void cmd_get_identities(const Options &options, const Environment &env, std::ostream &out) {
  const auto identities = connect_controlplane(options, env).list_identities(options.node_name);
  if (options.format() != OutputFormat::table)
    return print_document(out, options.format(), identities, DocumentLayout::single);
  const Table table = identities_table(identities, now_of(env));
  out << field_line("Domain", identities.trust_domain())
      << field_line("CA", identities.ca_cert_hash());
  render_section(out, "Certificates", table, "No certificates issued.");
}

void cmd_get_policies(const Options &options, const Environment &env, std::ostream &out) {
  print_resources(options, connect_controlplane(options, env).list("authorizationpolicy"),
                  policies_table, "policies", out);
}

void cmd_describe_workload(const Options &options, const Environment &env, std::ostream &out) {
  const std::string name = named_resource("workload", options.names.front(), options.ns);
  auto client = connect_controlplane(options, env);
  const auto workloads = by_name(client.list("workload"));
  const auto it = workloads.find(name);
  if (it == workloads.end()) throw CliError(fmt::format("{} not in the control plane", name));
  out << render_workload(it->second, resources_in_order(client.list("service")),
                         resources_in_order(client.list("authorizationpolicy")),
                         options.trust_domain);
}

// Exit code 0 when every decision allows, kExitDenied otherwise.
int cmd_check(const Options &options, const Environment &env, std::ostream &out) {
  auto client = connect_controlplane(options, env);
  const auto workloads = client.list("workload");
  const auto services = client.list("service");
  const auto policies = client.list("authorizationpolicy");
  const auto check = check_access(options.check_source, options.check_destination,
                                  options.trust_domain, workloads, services, policies);
  if (options.format() == OutputFormat::table)
    out << render_check(check);
  else
    print_document(out, options.format(), check, DocumentLayout::single);
  return check.allowed() ? 0 : kExitDenied;
}

void cmd_controlplane_status(const Options &options, const Environment &env, std::ostream &out) {
  const auto status = connect_controlplane(options, env).get_status();
  if (options.format() == OutputFormat::table)
    return void(out << render_controlplane_status(status, now_of(env)));
  print_document(out, options.format(), status, DocumentLayout::single);
}

void cmd_bpf_maps(const Options &options, const Environment &env, std::ostream &out) {
  const auto maps = connect(options, env).list_maps();
  if (options.format() == OutputFormat::table) return void(out << render_maps(maps));
  print_document(out, options.format(), maps, DocumentLayout::single);
}

void cmd_bpf_dump(const Options &options, const Environment &env, std::ostream &out) {
  auto dump = connect(options, env).dump_map(options.map_name, options.dump_limit);
  if (options.format() == OutputFormat::table) return void(out << render_dump(dump));
  dump.mutable_map();  // documents keep one shape
  print_document(out, options.format(), dump, DocumentLayout::single);
}

void cmd_fastpath(const Options &options, const Environment &env, std::ostream &out) {
  const auto report = fast_path_in_order(connect(options, env).get_fast_path());
  if (options.format() == OutputFormat::table)
    return void(out << render_fast_path(report, options.fast_path_sockets));
  print_document(out, options.format(), report, DocumentLayout::single);
}

void cmd_resilience(const Options &options, const Environment &env, std::ostream &out) {
  std::optional<ServiceFilter> filter;
  if (!options.resilience_service.empty())
    filter = ServiceFilter::parse(options.resilience_service);
  const auto report = resilience_in_order(
      connect(options, env)
          .get_resilience(filter && filter->ns ? *filter->ns : "", filter ? filter->name : ""));
  if (options.format() == OutputFormat::table) return void(out << render_resilience(report));
  print_document(out, options.format(), report, DocumentLayout::single);
}

// Waits `duration`; false when the operator interrupted the wait.
bool wait_for(std::chrono::milliseconds duration, const std::stop_token &interrupted) {
  std::mutex mutex;
  std::unique_lock lock(mutex);
  std::condition_variable_any().wait_for(lock, interrupted, duration, [] { return false; });
  return !interrupted.stop_requested();
}

// Clears the terminal and moves the cursor home (ANSI), before each frame of the live view.
constexpr std::string_view kClearScreen = "\x1b[H\x1b[2J";

// `meshctl stats`: frames of rates between consecutive reports until Ctrl-C (exit 0); --once
// draws one frame from two reports an interval apart (Ctrl-C there exits 130, as any call).
void cmd_stats(const Options &options, const Environment &env, std::ostream &out) {
  auto client = connect(options, env);
  if (options.format() != OutputFormat::table) {
    auto report = client.get_traffic();
    report.mutable_access_log();  // documents keep one shape
    return print_document(out, options.format(), report, DocumentLayout::single);
  }
  const std::string node = client.get_status().node();
  const auto interval = timeout_of_seconds(options.stats_interval_seconds);
  auto before = client.get_traffic();
  for (;;) {
    if (!wait_for(interval, env.interrupted)) {
      if (options.stats_once) throw Interrupted();
      return;
    }
    v1::TrafficReport after;
    try {
      after = client.get_traffic();
    } catch (const Interrupted &) {
      if (options.stats_once) throw;
      return;
    }
    const std::string frame =
        render_stats(node, after, traffic_stats(before, after), options.stats_top);
    if (options.stats_once) return void(out << frame);
    out << kClearScreen << frame;
    out.flush();
    before = std::move(after);
  }
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

void add_namespace(CLI::App *command, std::string &ns) {
  command->add_option("-n,--namespace", ns, "Namespace of the NAMEs (default: default)")
      ->type_name("NAMESPACE");
}

// The whole command tree. Its help text is generated from these declarations, so it cannot drift.
struct CommandLine {
  CLI::App app{
      "meshctl: the sockmesh operator's CLI, a client of the control plane's API (meshcp) and of "
      "a node agent's admin API (meshd).",
      "meshctl"};
  CLI::App *status = nullptr;
  CLI::App *stats = nullptr;
  CLI::App *bpf = nullptr;
  CLI::App *bpf_maps = nullptr;
  CLI::App *bpf_dump = nullptr;
  CLI::App *fastpath = nullptr;
  CLI::App *resilience = nullptr;
  CLI::App *get = nullptr;
  CLI::App *get_services = nullptr;
  CLI::App *get_endpoints = nullptr;
  CLI::App *get_workloads = nullptr;
  CLI::App *get_identities = nullptr;
  CLI::App *node_cmd = nullptr;
  CLI::App *node_add = nullptr;
  CLI::App *get_nodes = nullptr;
  CLI::App *describe = nullptr;
  CLI::App *describe_service = nullptr;
  CLI::App *get_policies = nullptr;
  CLI::App *describe_workload = nullptr;
  CLI::App *check = nullptr;
  CLI::App *apply = nullptr;
  CLI::App *remove = nullptr;
  CLI::App *controlplane = nullptr;
  CLI::App *controlplane_status = nullptr;
  CLI::App *version = nullptr;
  const Options &options;

  explicit CommandLine(Options &options) : options(options) {
    app.footer(
        "apply, delete, describe, check, controlplane, get workloads|nodes|policies and get "
        "services --from-controlplane talk to meshcp (--controlplane); status, stats, bpf, "
        "fastpath, resilience and the other gets talk to a node agent (describe service too, for "
        "its resilience part): without --node or --admin-socket, the only one whose socket exists "
        "under /run/sockmesh.\n"
        "Exit codes: 0 success, 1 failure (on stderr, starting \"meshctl: \"), 2 usage error, 3 "
        "denied (check), 130 interrupted.");
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
    app.add_option("--controlplane", options.controlplane,
                   "Talk to the control plane (meshcp) listening on this unix socket")
        ->type_name("PATH")
        ->capture_default_str();
    app.add_option("--timeout", options.timeout_seconds,
                   fmt::format("Seconds (> 0, <= {}) to wait for each answer of the agent or the "
                               "control plane",
                               kMaxTimeoutSeconds))
        ->type_name("SECONDS")
        ->check(positive_seconds())
        ->capture_default_str();

    status = app.add_subcommand(
        "status", "Agent health, config or stream state, programs, maps and counters");
    stats = app.add_subcommand(
        "stats",
        "Live traffic of the node (like top): connections, failures, bytes and RTT per service and "
        "per workload pair, redrawn every --interval until Ctrl-C");
    stats
        ->add_option("--interval", options.stats_interval_seconds,
                     fmt::format("Seconds (> 0, <= {}) between two reads of the kernel's counters",
                                 kMaxTimeoutSeconds))
        ->type_name("SECONDS")
        ->check(positive_seconds())
        ->capture_default_str();
    stats
        ->add_option("--top", options.stats_top,
                     "Show the N busiest services and workload pairs (by bytes/s, then conn/s)")
        ->type_name("N")
        ->check(CLI::Validator(CLI::PositiveNumber).description(""))
        ->capture_default_str();
    stats->add_flag("--once", options.stats_once,
                    "Draw one frame, from two reads --interval apart, without clearing the screen, "
                    "and exit (for scripts)");
    bpf = app.add_subcommand("bpf", "The node's BPF maps: what they hold and how full they are");
    bpf->require_subcommand(0, 1);
    bpf_maps = bpf->add_subcommand(
        "maps",
        "Every BPF map of the node: type, entries in use and capacity, memory, what it holds");
    bpf_dump = bpf->add_subcommand(
        "dump", "One BPF map's entries, decoded into services, workloads, nodes and rules");
    bpf_dump->add_option("MAP", options.map_name, "The map's name, as `meshctl bpf maps` lists it")
        ->type_name("")
        ->required();
    bpf_dump
        ->add_option("--limit", options.dump_limit,
                     "List at most N entries (default 0: the agent's limit, 1000)")
        ->type_name("N")
        ->check(CLI::Validator(CLI::NonNegativeNumber).description(""));
    fastpath = app.add_subcommand(
        "fastpath",
        "The same-node fast path (sockmap): on, off or unsupported and why, sockets in it, "
        "messages and bytes redirected socket to socket, fallbacks to TCP/IP by reason, and per "
        "workload whether it rides it");
    fastpath->add_flag("--sockets", options.fast_path_sockets,
                       "Also list the sockets in the fast path (the agent lists at most 1000): "
                       "owner, local and remote address, network namespace, socket cookie");
    resilience = app.add_subcommand(
        "resilience",
        "Resilience decided in the kernel at connect(): per service its settings, active "
        "connections and refusals, per backend its connections, failures and ejection");
    resilience
        ->add_option("SERVICE", options.resilience_service,
                     "Only this service: NAMESPACE/NAME, or NAME in any namespace")
        ->type_name("");
    get = app.add_subcommand("get", "List resources");
    get->require_subcommand(0, 1);
    get_services = get->add_subcommand(
        "services",
        "Services as the node agent applied them: VIPs, policy, usable/listed endpoints "
        "(--from-controlplane: as meshcp stores them)");
    get_services->alias("svc");
    auto *watch = get_services->add_flag(
        "-w,--watch", options.watch,
        "Print the services again after every config change the agent applies, until Ctrl-C");
    get_services
        ->add_flag("--from-controlplane", options.from_controlplane,
                   "List the desired services from meshcp instead of the agent's")
        ->excludes(watch);
    get_endpoints = get->add_subcommand(
        "endpoints", "Endpoints of every service, with the kernel's weight and traffic share");
    get_endpoints->alias("ep");
    get_endpoints
        ->add_option("SERVICE", options.endpoints_service,
                     "Only this service: NAMESPACE/NAME, or NAME in any namespace")
        ->type_name("");
    get_workloads =
        get->add_subcommand("workloads", "Workloads in meshcp: node, addresses, labels");
    get_policies = get->add_subcommand(
        "policies", "Authorization policies in meshcp: action, selector, number of rules");
    get_policies->alias("authorizationpolicies");
    get_identities = get->add_subcommand("identities",
                                         "Certificates meshcp's CA issued and still valid: per "
                                         "node, its own and its workloads' SVIDs");
    get_identities->add_option("--for-node", options.node_name, "Only this node")
        ->type_name("NAME");
    get_nodes = get->add_subcommand(
        "nodes", "Nodes in meshcp, whether their agent is connected and the version it ACKed");
    describe = app.add_subcommand("describe", "Show one resource of meshcp in detail");
    describe->require_subcommand(0, 1);
    describe_service = describe->add_subcommand(
        "service",
        "A service's spec, version, which agents ACKed that version, and the node agent's "
        "resilience state of it (connections, failures, ejections per backend)");
    describe_service->alias("svc");
    describe_service
        ->add_option("NAME", options.names, "NAMESPACE/NAME, or NAME in the -n namespace")
        ->type_name("")
        ->required()
        ->expected(1);
    add_namespace(describe_service, options.ns);
    describe_workload = describe->add_subcommand(
        "workload",
        "A workload's node, addresses, SPIFFE ID, labels, the services that name it and the "
        "policies that select it");
    describe_workload
        ->add_option("NAME", options.names, "NAMESPACE/NAME, or NAME in the -n namespace")
        ->type_name("")
        ->required()
        ->expected(1);
    add_namespace(describe_workload, options.ns);
    apply = app.add_subcommand(
        "apply", "Validate YAML files (docs/config.md) and apply their resources through meshcp");
    apply
        ->add_option("-f,--filename", options.files,
                     "A YAML file, a directory of *.yaml/*.yml files, or - for standard input; "
                     "repeatable")
        ->type_name("FILE|DIR")
        ->required()
        ->allow_extra_args(false);
    apply->add_flag("--dry-run", options.dry_run,
                    "Have meshcp validate the change without applying it");
    remove = app.add_subcommand("delete", "Delete resources from meshcp: KIND NAME..., or -f FILE");
    remove->add_option("KIND", options.kind, "workload, service or node")->type_name("");
    remove->add_option("NAME", options.names, "NAMESPACE/NAME, or NAME in the -n namespace")
        ->type_name("");
    remove
        ->add_option("-f,--filename", options.files,
                     "Delete the resources a YAML file (or a directory's) defines; repeatable")
        ->type_name("FILE|DIR")
        ->allow_extra_args(false);
    add_namespace(remove, options.ns);
    check = app.add_subcommand(
        "check",
        "Whether SRC may connect to DST:PORT under meshcp's authorization policies, and which rule "
        "decides (exit 0 allowed, 3 denied)");
    check
        ->add_option("SRC", options.check_source,
                     "NAMESPACE/NAME of a workload, a SPIFFE ID, or \"unauthenticated\"")
        ->type_name("")
        ->required();
    check
        ->add_option("DST:PORT", options.check_destination,
                     "[workload/|service/]NAMESPACE/NAME:PORT (a service's PORT is a VIP port; "
                     "each endpoint is checked at its own)")
        ->type_name("")
        ->required();
    for (auto *command : {check, describe_workload}) {
      command
          ->add_option("--trust-domain", options.trust_domain,
                       "The mesh's trust domain, for workloads' SPIFFE IDs")
          ->type_name("DOMAIN")
          ->check(trust_domain_name())
          ->capture_default_str();
    }
    controlplane = app.add_subcommand("controlplane", "The control plane (meshcp)");
    controlplane->alias("cp");
    controlplane->require_subcommand(0, 1);
    controlplane_status = controlplane->add_subcommand(
        "status", "State version, state directory, resources, and every agent's ACK or NACK");
    node_cmd = app.add_subcommand("node", "Nodes joining the mesh");
    node_cmd->require_subcommand(0, 1);
    node_add = node_cmd->add_subcommand(
        "add", "Make a one-time bootstrap token with which node NAME joins (meshd --join-token)");
    node_add->add_option("NAME", options.node_name, "The node's name (meshd --node)")
        ->type_name("")
        ->required();
    node_add
        ->add_option("--ttl", options.token_ttl_seconds,
                     "Seconds the token may be used (default 86400, at most 604800)")
        ->type_name("SECONDS")
        ->check(CLI::Range(std::int64_t{1}, std::int64_t{604800}));
    version = app.add_subcommand("version", "Print meshctl's version");
    for (auto *command : {status, stats, bpf_maps, bpf_dump, fastpath, resilience, get_services,
                          get_endpoints, get_workloads, get_nodes, get_identities, node_add,
                          controlplane_status, get_policies, check}) {
      command
          ->add_option("-o,--output", options.output,
                       "Output format: table, json (protobuf's JSON mapping of the answer) or yaml "
                       "(the same tree)")
          ->type_name("FORMAT")
          ->check(output_format())
          ->capture_default_str();
    }
    for (auto *parent : {&app, get, describe, controlplane, node_cmd, bpf}) {
      for (auto *sub : parent->get_subcommands({})) sub->group("Commands");
    }
  }

  // CLI11 reports a missing subcommand without naming the choices; this names them. Also the
  // argument combinations of delete that CLI11 cannot express.
  void check_command_line() const {
    const auto missing = [](const CLI::App &parent) {
      std::vector<std::string> names;
      for (const auto *sub : parent.get_subcommands({})) names.push_back(sub->get_name());
      const std::string where = parent.get_parent() ? fmt::format("{}: ", parent.get_name()) : "";
      return CLI::ParseError(
          fmt::format("{}missing command, one of: {}", where, fmt::join(names, ", ")),
          CLI::ExitCodes::RequiredError);
    };
    if (app.get_subcommands().empty()) throw missing(app);
    for (const auto *parent : {get, describe, controlplane, node_cmd, bpf}) {
      if (parent->parsed() && parent->get_subcommands().empty()) throw missing(*parent);
    }
    if (remove->parsed()) check_delete();
    if (check->parsed()) {
      if (auto error = check_usage_error(options.check_source, options.check_destination))
        throw CLI::ValidationError("check", *error);
    }
  }

  void check_delete() const {
    const auto usage = [](std::string text) {
      return CLI::ValidationError("delete", std::move(text));
    };
    if (!options.files.empty()) {
      if (!options.kind.empty()) throw usage("give KIND NAME... or -f, not both");
      if (!options.ns.empty()) throw usage("-n applies to KIND NAME..., not to -f");
      return;
    }
    if (options.kind.empty()) throw usage("give KIND NAME... or -f FILE");
    if (options.names.empty()) throw usage(fmt::format("{}: give at least one NAME", options.kind));
  }

  // *code: the exit code of a command that has its own (check).
  void dispatch(const Environment &env, std::ostream &out, int *code) const {
    if (check->parsed()) {
      *code = cmd_check(options, env, out);
      return;
    }
    if (status->parsed()) return cmd_status(options, env, out);
    if (stats->parsed()) return cmd_stats(options, env, out);
    if (bpf_maps->parsed()) return cmd_bpf_maps(options, env, out);
    if (bpf_dump->parsed()) return cmd_bpf_dump(options, env, out);
    if (fastpath->parsed()) return cmd_fastpath(options, env, out);
    if (resilience->parsed()) return cmd_resilience(options, env, out);
    if (get_services->parsed()) {
      if (options.from_controlplane) return cmd_get_desired_services(options, env, out);
      return options.watch ? cmd_watch_services(options, env, out)
                           : cmd_get_services(options, env, out);
    }
    if (get_endpoints->parsed()) return cmd_get_endpoints(options, env, out);
    if (get_workloads->parsed()) return cmd_get_workloads(options, env, out);
    if (get_nodes->parsed()) return cmd_get_nodes(options, env, out);
    if (get_identities->parsed()) return cmd_get_identities(options, env, out);
    if (node_add->parsed()) return cmd_node_add(options, env, out);
    if (describe_service->parsed()) return cmd_describe_service(options, env, out);
    if (describe_workload->parsed()) return cmd_describe_workload(options, env, out);
    if (get_policies->parsed()) return cmd_get_policies(options, env, out);
    if (apply->parsed()) return cmd_apply(options, env, out);
    if (remove->parsed()) return cmd_delete(options, env, out);
    if (controlplane_status->parsed()) return cmd_controlplane_status(options, env, out);
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
    command_line.check_command_line();
  } catch (const CLI::ParseError &e) {
    return usage_error(command_line.app, e, out, err);
  }
  int code = 0;
  try {
    command_line.dispatch(env, out, &code);
  } catch (const CliError &e) {
    out.flush();
    err << "meshctl: " << e.what() << '\n';
    return kExitFailure;
  } catch (const Interrupted &) {
    return kExitInterrupted;
  }
  return code;
}

}  // namespace sockmesh::cli
