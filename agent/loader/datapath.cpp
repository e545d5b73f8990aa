#include "loader/datapath.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <openssl/evp.h>
#include <spdlog/spdlog.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "capture.skel.h"
#include "fastpath.skel.h"
#include "sock_lb.skel.h"
#include "sockmesh/capture_maps.h"
#include "sockmesh/common/paths.h"
#include "sockmesh/counters.h"
#include "sockmesh/fastpath.h"
#include "sockmesh/telemetry.h"

namespace sockmesh::loader {
namespace {

[[noreturn]] void fail(const std::string &what, int err) {
  throw std::runtime_error(what + ": " + std::strerror(err));
}

// libbpf's messages (verifier logs among them) go to our logger: warnings as warnings, the
// chatter at debug.
int libbpf_log(enum libbpf_print_level level, const char *format, va_list args) {
  char *text = nullptr;
  int n = vasprintf(&text, format, args);  // verifier logs run to many kilobytes
  if (n < 0) return 0;
  while (n > 0 && text[n - 1] == '\n') text[--n] = '\0';
  if (level == LIBBPF_WARN)
    spdlog::warn("libbpf: {}", text);
  else
    spdlog::debug("libbpf: {}", text);
  free(text);
  return 0;
}

void mkdir_p(const std::string &path, mode_t mode) {
  std::string partial;
  std::stringstream parts(path);
  std::string part;
  while (std::getline(parts, part, '/')) {
    if (part.empty()) continue;
    partial += "/" + part;
    if (mkdir(partial.c_str(), mode) != 0 && errno != EEXIST) fail("mkdir " + partial, errno);
  }
}

void ensure_bpffs() {
  struct statfs fs {};
  if (statfs("/sys/fs/bpf", &fs) == 0 && fs.f_type == BPF_FS_MAGIC) return;
  mkdir_p("/sys/fs/bpf", 0755);
  if (mount("bpffs", "/sys/fs/bpf", "bpf", 0, "mode=0700") != 0)
    fail("mount bpffs on /sys/fs/bpf", errno);
  spdlog::info("event=bpffs_mounted path=/sys/fs/bpf");
}

bool exists(const std::string &path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

uint64_t cgroup_id_of(const std::string &path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) fail("stat cgroup " + path, errno);
  return st.st_ino;  // on cgroup v2 the inode number is the cgroup id
}

// A pinned map whose layout the new object no longer shares cannot be reused (libbpf refuses
// the load). Maps that hold only what the agent rebuilds or recounts are dropped from the pins
// instead: programs of the earlier agent keep their own reference until their links are
// switched. Those are the counters (sm_counters grows when a counter is added) and the traffic
// telemetry, which an agent restarts from zero anyway (bpf/include/sockmesh/telemetry.h).
void drop_incompatible_pins(const std::string &pin_dir) {
  struct Layout {
    const char *name;
    uint32_t key_size, value_size, max_entries;
  };
  const Layout layouts[] = {
      {"sm_counters", sizeof(uint32_t), sizeof(uint64_t), SM_CNT__MAX},
      {"sm_traffic", sizeof(sm_traffic_key), sizeof(sm_traffic_value), SM_MAX_TRAFFIC_TUPLES},
      {"sm_telemetry", sizeof(uint32_t), sizeof(sm_telemetry_config), 1},
      {"sm_conn_store", sizeof(int), sizeof(sm_conn), 0},
      // Sockets of live connections stay in the old map (their programs hold it) and keep their
      // fast path; new ones go into the new map. The agent rewrites sm_netns whole.
      {"sm_fastpath", sizeof(sm_fp_key), sizeof(uint64_t), SM_MAX_FASTPATH_SOCKETS},
      {"sm_fastpath_socks", sizeof(int), sizeof(sm_fp_sock), 0},
      {"sm_netns", sizeof(sm_ip_key), sizeof(uint64_t), SM_MAX_NETNS_ADDRESSES},
  };
  for (const auto &layout : layouts) {
    std::string pin = pin_dir + "/" + layout.name;
    UniqueFd map(bpf_obj_get(pin.c_str()));
    if (!map.valid()) continue;
    bpf_map_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(map.get(), &info, &len) != 0)
      fail("inspect pinned map " + pin, errno);
    if (info.key_size == layout.key_size && info.value_size == layout.value_size &&
        info.max_entries == layout.max_entries)
      continue;
    if (unlink(pin.c_str()) != 0 && errno != ENOENT) fail("remove outdated pin " + pin, errno);
    spdlog::info("event=pin_replaced map={} value_size={} now={} entries={} now={}", layout.name,
                 info.value_size, layout.value_size, info.max_entries, layout.max_entries);
  }
}

// The pin holding the digest of the load-time settings the pinned programs were loaded with.
constexpr const char *kLoaderDigestPin = "sm_loader";
using Digest = std::array<uint8_t, 32>;

// The three objects' bytes and every value this agent writes into their read-only data before
// loading: two agents with the same digest load the same programs with the same settings.
Digest settings_digest(const DatapathOptions &options, uint32_t root_level, uint32_t page_size) {
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  size_t size = 0;
  const void *bytes = sock_lb__elf_bytes(&size);
  EVP_DigestUpdate(ctx, bytes, size);
  bytes = capture__elf_bytes(&size);
  EVP_DigestUpdate(ctx, bytes, size);
  bytes = fastpath__elf_bytes(&size);
  EVP_DigestUpdate(ctx, bytes, size);
  const std::string settings = "set_retval=" + std::to_string(options.set_retval) +
                               " ring=" + std::to_string(options.events_ring_bytes) +
                               " fast_path=" + std::to_string(options.fast_path) +
                               " root_level=" + std::to_string(root_level) +
                               " page=" + std::to_string(page_size);
  EVP_DigestUpdate(ctx, settings.data(), settings.size());
  Digest digest{};
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, digest.data(), &len);
  EVP_MD_CTX_free(ctx);
  return digest;
}

bool read_pinned_digest(const std::string &pin_dir, Digest &out) {
  UniqueFd map(bpf_obj_get((pin_dir + "/" + kLoaderDigestPin).c_str()));
  uint32_t zero = 0;
  return map.valid() && bpf_map_lookup_elem(map.get(), &zero, out.data()) == 0;
}

void write_pinned_digest(const std::string &pin_dir, const Digest &digest) {
  const std::string pin = pin_dir + "/" + kLoaderDigestPin;
  UniqueFd map(bpf_obj_get(pin.c_str()));
  if (!map.valid()) {
    map = UniqueFd(bpf_map_create(BPF_MAP_TYPE_ARRAY, kLoaderDigestPin, sizeof(uint32_t),
                                  sizeof(Digest), 1, nullptr));
    if (!map.valid()) fail("create map " + pin, errno);
    if (bpf_obj_pin(map.get(), pin.c_str()) != 0) fail("pin " + pin, errno);
  }
  uint32_t zero = 0;
  if (bpf_map_update_elem(map.get(), &zero, digest.data(), BPF_ANY) != 0)
    fail("write " + pin, errno);
}

// The event ring the pinned programs write into. It is not pinned (bpf/lib/maps.h), so it is found
// through the program of the pinned connect4 link; only a ring of the size this agent wants will
// do.
UniqueFd pinned_event_ring(const std::string &pin_dir, uint32_t ring_bytes) {
  UniqueFd link(bpf_obj_get((pin_dir + "/link_connect4").c_str()));
  if (!link.valid()) return {};
  bpf_link_info link_info{};
  uint32_t len = sizeof(link_info);
  if (bpf_obj_get_info_by_fd(link.get(), &link_info, &len) != 0) return {};
  UniqueFd prog(bpf_prog_get_fd_by_id(link_info.prog_id));
  if (!prog.valid()) return {};
  uint32_t map_ids[64] = {};
  bpf_prog_info prog_info{};
  prog_info.nr_map_ids = 64;
  prog_info.map_ids = reinterpret_cast<uint64_t>(map_ids);
  len = sizeof(prog_info);
  if (bpf_obj_get_info_by_fd(prog.get(), &prog_info, &len) != 0) return {};
  for (uint32_t i = 0; i < std::min<uint32_t>(prog_info.nr_map_ids, 64); ++i) {
    UniqueFd map(bpf_map_get_fd_by_id(map_ids[i]));
    bpf_map_info map_info{};
    len = sizeof(map_info);
    if (map.valid() && bpf_obj_get_info_by_fd(map.get(), &map_info, &len) == 0 &&
        map_info.type == BPF_MAP_TYPE_RINGBUF && std::strcmp(map_info.name, "sm_events") == 0 &&
        map_info.max_entries == ring_bytes)
      return map;
  }
  return {};
}

// Whether the attached program `prog_id` is `loaded`: same type, name and instructions (the tag
// is a hash of the instructions with the map references taken out).
bool same_program(uint32_t prog_id, int loaded) {
  UniqueFd attached(bpf_prog_get_fd_by_id(prog_id));
  bpf_prog_info a{}, b{};
  uint32_t len_a = sizeof(a), len_b = sizeof(b);
  return attached.valid() && bpf_obj_get_info_by_fd(attached.get(), &a, &len_a) == 0 &&
         bpf_obj_get_info_by_fd(loaded, &b, &len_b) == 0 && a.type == b.type &&
         std::strcmp(a.name, b.name) == 0 && std::memcmp(a.tag, b.tag, sizeof(a.tag)) == 0;
}

// The level of a cgroup v2 directory: 0 for the mount's root, 1 for a directory in it, and so on.
uint32_t cgroup_level(const std::string &dir) {
  std::error_code ec, ec_root;
  const auto path = std::filesystem::canonical(dir, ec);
  const auto root = std::filesystem::canonical(cgroup2_mount(), ec_root);
  if (ec || ec_root) return 0;  // walk every level: correct, only slower
  uint32_t level = 0;
  auto rel = path.lexically_relative(root);
  for (const auto &part : rel)
    if (!part.empty() && part != ".") level++;
  if (!rel.empty() && *rel.begin() == "..") return 0;
  return level;
}

// The canonical form of a cgroup directory, for comparing two of them.
std::string canonical_dir(const std::string &path) {
  std::error_code ec;
  auto canonical = std::filesystem::canonical(path, ec);
  if (ec) throw std::runtime_error("cgroup " + path + ": " + ec.message());
  return canonical.string();
}

bool same_or_below(const std::string &dir, const std::string &top) {
  return dir == top || (dir.size() > top.size() && dir.compare(0, top.size(), top) == 0 &&
                        (top.back() == '/' || dir[top.size()] == '/'));
}

// Whether cgroup directory `dir` is `top` or below it. The two paths may come from different
// mounts of the one cgroup v2 hierarchy: in a Kubernetes pod meshd sees its own cgroup through
// its cgroup namespace (/sys/fs/cgroup) and the workloads through the host's (hostPath
// /host/cgroup), so when the paths do not say so, `top`'s subtree is searched for `dir`'s
// cgroup id (the directory's inode number, the same in every mount).
bool cgroup_inside(const std::string &dir, const std::string &top) {
  if (same_or_below(dir, top)) return true;
  struct stat wanted {};
  struct stat root {};
  if (stat(dir.c_str(), &wanted) != 0 || stat(top.c_str(), &root) != 0) return false;
  if (wanted.st_dev != root.st_dev) return false;  // another cgroup file system altogether
  if (wanted.st_ino == root.st_ino) return true;
  namespace fs = std::filesystem;
  std::error_code ec;
  constexpr size_t kMaxEntries = 1'000'000;  // a node's whole cgroup tree is far smaller
  size_t seen = 0;
  for (fs::recursive_directory_iterator it(top, fs::directory_options::skip_permission_denied, ec),
       end;
       !ec && it != end && seen < kMaxEntries; it.increment(ec), ++seen) {
    if (!it->is_directory(ec) || it->is_symlink(ec)) {
      ec.clear();
      continue;
    }
    struct stat st {};
    if (stat(it->path().c_str(), &st) == 0 && st.st_ino == wanted.st_ino &&
        st.st_dev == wanted.st_dev)
      return true;
  }
  return false;
}

}  // namespace

Datapath::Datapath(const std::string &node, const std::string &workload_cgroup,
                   const DatapathOptions &options)
    : workload_cgroup_(workload_cgroup) {
  libbpf_set_print(libbpf_log);
  ensure_bpffs();
  pin_dir_ = paths::pin_dir(node);
  mkdir_p(pin_dir_, 0700);
  adopted_ = exists(pin_dir_ + "/link_connect4");
  drop_incompatible_pins(pin_dir_);
  const uint32_t root_level = cgroup_level(workload_cgroup);
  const long page = sysconf(_SC_PAGESIZE);
  const uint32_t page_size = page > 0 ? uint32_t(page) : 4096;
  settings_digest_ = settings_digest(options, root_level, page_size);
  Digest pinned{};
  UniqueFd old_ring;
  if (adopted_ && read_pinned_digest(pin_dir_, pinned) && pinned == settings_digest_)
    old_ring = pinned_event_ring(pin_dir_, options.events_ring_bytes);
  keep_identical_ = old_ring.valid();
  // Before any link changes: should this start fail half-way, the next one must not take the
  // programs then attached for the ones the digest describes.
  if (adopted_ && !keep_identical_ && exists(pin_dir_ + "/" + kLoaderDigestPin))
    write_pinned_digest(pin_dir_, Digest{});

  // Both objects share their maps through the pins (LIBBPF_PIN_BY_NAME): the first load creates
  // and pins a map, the second reuses it.
  LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = pin_dir_.c_str());
  skel_ = sock_lb__open_opts(&opts);
  if (!skel_) fail("open BPF object sock_lb", errno);
  skel_->rodata->sm_has_set_retval = options.set_retval;
  skel_->rodata->sm_events_wakeup_bytes = options.events_ring_bytes / 4;
  skel_->rodata->sm_workload_root_level = root_level;
  if (int err = bpf_map__set_max_entries(skel_->maps.sm_events, options.events_ring_bytes);
      err != 0) {
    destroy();
    fail("size the event ring buffer to " + std::to_string(options.events_ring_bytes) + " bytes",
         -err);
  }
  // The kept programs go on writing into their ring: this agent reads that one (events written
  // while no agent ran included).
  if (keep_identical_) {
    if (int err = bpf_map__reuse_fd(skel_->maps.sm_events, old_ring.get()); err != 0) {
      destroy();
      fail("reuse the event ring buffer of the pinned programs", -err);
    }
  }
  if (int err = sock_lb__load(skel_); err != 0) {
    destroy();
    fail("load BPF object sock_lb (the verifier's log is above)", -err);
  }
  capture_ = capture__open_opts(&opts);
  if (!capture_) {
    int err = errno;
    destroy();
    fail("open BPF object capture", err);
  }
  capture_->rodata->sm_page_size = page_size;
  capture_->rodata->sm_events_wakeup_bytes = options.events_ring_bytes / 4;
  capture_->rodata->sm_fastpath_supported = options.fast_path;
  // The event ring buffer is not pinned (bpf/lib/maps.h): the capture object writes into the one
  // sock_lb made.
  if (int err = bpf_map__reuse_fd(capture_->maps.sm_events, bpf_map__fd(skel_->maps.sm_events));
      err != 0) {
    destroy();
    fail("share the event ring buffer with the capture object", -err);
  }
  if (int err = capture__load(capture_); err != 0) {
    destroy();
    fail("load BPF object capture (the verifier's log is above)", -err);
  }
  if (options.fast_path) {
    try {
      attach_fast_path();
    } catch (...) {
      destroy();
      throw;
    }
  }

  UniqueFd cgroup(open(workload_cgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!cgroup.valid()) {
    int err = errno;
    destroy();
    fail("open workload cgroup " + workload_cgroup, err);
  }
  try {
    // Before the first workload program is attached (or a pinned link switched to a new one): an
    // agent inside the workload cgroup is never acted on.
    if (!options.agent_cgroup.empty()) set_agent_cgroup(options.agent_cgroup);
    attach_all(cgroup.get(), cgroup_id_of(workload_cgroup));
    write_pinned_digest(pin_dir_, settings_digest_);
  } catch (...) {
    destroy();
    throw;
  }
  size_t kept = 0;
  for (const auto &p : programs_) kept += p.kept;
  spdlog::info("event=programs_attached kept={} switched_or_attached={}",
               kept + fast_path_program_.kept,
               programs_.size() - kept + (fastpath_ && !fast_path_program_.kept));
}

Datapath::~Datapath() {
  // Closing our fds leaves the pinned links attached and the pinned maps alive: the data path
  // keeps running without the agent (DESIGN.md, principle 2).
  destroy();
}

// The sk_msg program runs for the sockets in sm_fastpath: it is attached to the map, not to a
// cgroup, and has no link to pin. Attaching replaces the program an earlier agent attached (the
// kernel swaps it atomically; sockets already in the map keep the program they joined with).
void Datapath::attach_fast_path() {
  // Every map of the object is one the other two made (pinned, or the unpinned ring buffer).
  LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = pin_dir_.c_str());
  fastpath_ = fastpath__open_opts(&opts);
  if (!fastpath_) fail("open BPF object fastpath", errno);
  if (int err = bpf_map__reuse_fd(fastpath_->maps.sm_events, bpf_map__fd(skel_->maps.sm_events));
      err != 0)
    fail("share the event ring buffer with the fastpath object", -err);
  if (int err = fastpath__load(fastpath_); err != 0)
    fail("load BPF object fastpath (the verifier's log is above)", -err);
  const int prog = bpf_program__fd(fastpath_->progs.sm_fastpath_msg);
  const int sockmap = bpf_map__fd(fastpath_->maps.sm_fastpath);
  ProgramInfo program;
  program.name = bpf_program__name(fastpath_->progs.sm_fastpath_msg);
  program.attach_type = "sk_msg";
  uint32_t ids[4] = {}, count = 4, flags = 0;
  if (keep_identical_ && bpf_prog_query(sockmap, BPF_SK_MSG_VERDICT, 0, &flags, ids, &count) == 0 &&
      count == 1 && same_program(ids[0], prog)) {
    program.kept = true;
    program.prog_id = ids[0];
  } else {
    if (bpf_prog_attach(prog, sockmap, BPF_SK_MSG_VERDICT, 0) != 0)
      fail("attach sk_msg to sm_fastpath", errno);
    bpf_prog_info prog_info{};
    uint32_t len = sizeof(prog_info);
    if (bpf_obj_get_info_by_fd(prog, &prog_info, &len) == 0) program.prog_id = prog_info.id;
  }
  fast_path_program_ = program;
}

void Datapath::destroy() {
  for (auto *link : links_) bpf_link__destroy(link);
  links_.clear();
  if (fastpath_) fastpath__destroy(fastpath_);
  fastpath_ = nullptr;
  if (capture_) capture__destroy(capture_);
  capture_ = nullptr;
  if (skel_) sock_lb__destroy(skel_);
  skel_ = nullptr;
}

void Datapath::attach_all(int cgroup_fd, uint64_t cgroup_id) {
  attach_slots(
      {
          // First: the agent's sockets are marked from the moment any other program runs.
          {skel_->progs.sm_sock_create, "cgroup/sock_create", "link_sock_create"},
          {skel_->progs.sm_connect4, "cgroup/connect4", "link_connect4"},
          {skel_->progs.sm_connect6, "cgroup/connect6", "link_connect6"},
          {skel_->progs.sm_sendmsg4, "cgroup/sendmsg4", "link_sendmsg4"},
          {skel_->progs.sm_sendmsg6, "cgroup/sendmsg6", "link_sendmsg6"},
          {skel_->progs.sm_recvmsg4, "cgroup/recvmsg4", "link_recvmsg4"},
          {skel_->progs.sm_recvmsg6, "cgroup/recvmsg6", "link_recvmsg6"},
          {skel_->progs.sm_getpeername4, "cgroup/getpeername4", "link_getpeername4"},
          {skel_->progs.sm_getpeername6, "cgroup/getpeername6", "link_getpeername6"},
          {skel_->progs.sm_sock_release, "cgroup/sock_release", "link_sock_release"},
          {capture_->progs.sm_sockops, "sockops", "link_sockops"},
      },
      cgroup_fd, cgroup_id, OtherCgroup::kRefuse);
}

// The agent's cgroup may lie inside the workload cgroup, never be it: the workloads' own sockets
// would count as the agent's (never balanced), and the agent-cgroup programs would run for every
// workload socket (attach_agent).
void Datapath::set_agent_cgroup(const std::string &agent_cgroup) {
  std::string agent = canonical_dir(agent_cgroup);
  std::string workloads = canonical_dir(workload_cgroup_);
  if (agent == workloads || cgroup_id_of(agent) == cgroup_id_of(workloads))
    throw std::runtime_error("agent cgroup " + agent_cgroup + " must not be workload cgroup " +
                             workload_cgroup_ + " itself (it may lie inside it)");
  sm_agent_cgroup value{};
  if (cgroup_inside(agent, workloads)) {
    value.id = cgroup_id_of(agent);
    value.level = cgroup_level(agent);  // for the log and meshctl bpf dump; the programs use the id
  }
  uint32_t zero = 0;
  if (bpf_map_update_elem(agent_cgroup_fd(), &zero, &value, BPF_ANY) != 0)
    fail("write the agent's cgroup into sm_agent_cgroup", errno);
  spdlog::info("event=agent_cgroup cgroup={} inside_workloads={} cgroup_id={} level={}", agent,
               value.id != 0, value.id, value.level);
}

void Datapath::attach_agent(const std::string &agent_cgroup) {
  // The agent-cgroup programs on the workload cgroup or above it would run for every workload
  // socket: sm_setsockopt would take any workload's reports of failed upstreams (and eject
  // backends), sm_getsockopt answer for them. Inside it, they run for the agent's sockets only.
  std::string agent = canonical_dir(agent_cgroup);
  std::string workloads = canonical_dir(workload_cgroup_);
  if (same_or_below(workloads, agent))
    throw std::runtime_error("agent cgroup " + agent_cgroup + " must not be workload cgroup " +
                             workload_cgroup_ + " nor contain it (it may lie inside it)");
  uint64_t id = cgroup_id_of(agent_cgroup);
  if (agent_cgroup_id_ == id) return;
  if (agent_cgroup_id_ != 0)
    throw std::runtime_error("the capture programs are attached to another agent cgroup already");
  set_agent_cgroup(agent_cgroup);
  UniqueFd cgroup(open(agent_cgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!cgroup.valid()) fail("open agent cgroup " + agent_cgroup, errno);
  attach_slots(
      {
          {capture_->progs.sm_sockops_agent, "sockops", "link_agent_sockops"},
          {capture_->progs.sm_getsockopt, "cgroup/getsockopt", "link_agent_getsockopt"},
          {capture_->progs.sm_setsockopt, "cgroup/setsockopt", "link_agent_setsockopt"},
      },
      cgroup.get(), id, OtherCgroup::kReplace);
  agent_cgroup_id_ = id;
}

void Datapath::attach_slots(const std::vector<Slot> &slots, int cgroup_fd, uint64_t cgroup_id,
                            OtherCgroup other) {
  for (const auto &slot : slots) {
    std::string pin = pin_dir_ + "/" + slot.pin_name;
    bpf_link *link = nullptr;
    uint32_t pinned_prog_id = 0;
    if (exists(pin)) {
      link = bpf_link__open(pin.c_str());
      if (!link) fail("open pinned link " + pin, errno);
      bpf_link_info info{};
      uint32_t len = sizeof(info);
      if (bpf_obj_get_info_by_fd(bpf_link__fd(link), &info, &len) != 0) {
        int err = errno;
        bpf_link__destroy(link);
        fail("inspect pinned link " + pin, err);
      }
      pinned_prog_id = info.prog_id;
      if (info.type == BPF_LINK_TYPE_CGROUP && info.cgroup.cgroup_id == 0) {
        // Detached (`bpftool link detach`, or its cgroup was removed): attached nowhere, so a new
        // link takes its pin. This is what makes a restart the cure for a failed liveness probe.
        bpf_link__destroy(link);
        link = nullptr;
        if (unlink(pin.c_str()) != 0 && errno != ENOENT) fail("remove pin " + pin, errno);
        spdlog::warn("event=link_defunct pin={} action=attach_again", pin);
      } else if (info.type != BPF_LINK_TYPE_CGROUP || info.cgroup.cgroup_id != cgroup_id) {
        if (other == OtherCgroup::kRefuse) {
          bpf_link__destroy(link);
          throw std::runtime_error("pinned link " + pin +
                                   " is attached to another cgroup; run `meshd uninstall --node " +
                                   pin_dir_.substr(pin_dir_.rfind('/') + 1) + "` first");
        }
        // The earlier agent's cgroup: detach there, attach here.
        if (bpf_link_detach(bpf_link__fd(link)) != 0 && errno != EINVAL && errno != ENOLINK) {
          int err = errno;
          bpf_link__destroy(link);
          fail("detach pinned link " + pin + " from the earlier agent's cgroup", err);
        }
        bpf_link__destroy(link);
        link = nullptr;
        if (unlink(pin.c_str()) != 0 && errno != ENOENT) fail("remove pin " + pin, errno);
        spdlog::info("event=link_moved pin={} from_cgroup_id={} to_cgroup_id={}", pin,
                     info.cgroup.cgroup_id, cgroup_id);
      }
    }
    link_cgroups_.push_back(cgroup_id);
    ProgramInfo program;
    if (link) {
      links_.push_back(link);
      program.kept = keep_identical_ && same_program(pinned_prog_id, bpf_program__fd(slot.prog));
      if (!program.kept) {
        if (int err = bpf_link__update_program(link, slot.prog); err != 0)
          fail("switch pinned link " + pin + " to the new program", -err);
      }
    } else {
      link = bpf_program__attach_cgroup(slot.prog, cgroup_fd);
      if (!link) fail(std::string("attach ") + slot.attach_type, errno);
      links_.push_back(link);
      if (int err = bpf_link__pin(link, pin.c_str()); err != 0) fail("pin link " + pin, -err);
    }

    program.name = bpf_program__name(slot.prog);
    program.attach_type = slot.attach_type;
    bpf_prog_info prog_info{};
    uint32_t len = sizeof(prog_info);
    if (program.kept)
      program.prog_id = pinned_prog_id;
    else if (bpf_obj_get_info_by_fd(bpf_program__fd(slot.prog), &prog_info, &len) == 0)
      program.prog_id = prog_info.id;
    bpf_link_info link_info{};
    len = sizeof(link_info);
    if (bpf_obj_get_info_by_fd(bpf_link__fd(link), &link_info, &len) == 0)
      program.link_id = link_info.id;
    programs_.push_back(program);
  }
}

int Datapath::services_fd() const {
  return bpf_map__fd(skel_->maps.sm_services);
}
int Datapath::backend_sets_fd() const {
  return bpf_map__fd(skel_->maps.sm_backend_sets);
}
int Datapath::counters_fd() const {
  return bpf_map__fd(skel_->maps.sm_counters);
}
int Datapath::workloads_fd() const {
  return bpf_map__fd(skel_->maps.sm_workloads);
}
int Datapath::endpoints_fd() const {
  return bpf_map__fd(skel_->maps.sm_endpoints);
}
int Datapath::agent_config_fd() const {
  return bpf_map__fd(skel_->maps.sm_agent);
}
int Datapath::capture_flows_fd() const {
  return bpf_map__fd(capture_->maps.sm_capture_flows);
}
int Datapath::traffic_fd() const {
  return bpf_map__fd(skel_->maps.sm_traffic);
}
int Datapath::telemetry_fd() const {
  return bpf_map__fd(skel_->maps.sm_telemetry);
}
int Datapath::events_fd() const {
  return bpf_map__fd(skel_->maps.sm_events);
}
int Datapath::policy_fd() const {
  return bpf_map__fd(skel_->maps.sm_policy);
}
int Datapath::policy_denials_fd() const {
  return bpf_map__fd(skel_->maps.sm_policy_denials);
}
int Datapath::fastpath_fd() const {
  return bpf_map__fd(skel_->maps.sm_fastpath);
}
int Datapath::netns_fd() const {
  return bpf_map__fd(skel_->maps.sm_netns);
}
int Datapath::service_states_fd() const {
  return bpf_map__fd(skel_->maps.sm_service_states);
}
int Datapath::backend_states_fd() const {
  return bpf_map__fd(skel_->maps.sm_backend_states);
}
int Datapath::fault_sources_fd() const {
  return bpf_map__fd(skel_->maps.sm_fault_sources);
}
int Datapath::rate_sources_fd() const {
  return bpf_map__fd(skel_->maps.sm_rate_sources);
}
int Datapath::agent_cgroup_fd() const {
  return bpf_map__fd(skel_->maps.sm_agent_cgroup);
}

std::vector<ProgramInfo> Datapath::programs() const {
  auto out = programs_;
  for (size_t i = 0; i < out.size() && i < links_.size(); ++i) {
    bpf_link_info info{};
    uint32_t len = sizeof(info);
    out[i].attached = bpf_obj_get_info_by_fd(bpf_link__fd(links_[i]), &info, &len) == 0 &&
                      info.cgroup.cgroup_id == link_cgroups_[i];
  }
  if (fastpath_) {
    // Attached to sm_fastpath: no link. Kernels before 6.0 cannot list a sockmap's programs;
    // there it counts as attached (it was at start).
    ProgramInfo program = fast_path_program_;
    uint32_t ids[4] = {}, count = 4, flags = 0;
    if (bpf_prog_query(bpf_map__fd(fastpath_->maps.sm_fastpath), BPF_SK_MSG_VERDICT, 0, &flags, ids,
                       &count) == 0)
      program.attached = std::find(ids, ids + count, program.prog_id) != ids + count;
    else
      program.attached = true;
    out.push_back(program);
  }
  return out;
}

std::vector<MapInfo> Datapath::maps() const {
  std::vector<MapInfo> out;
  // Both objects share the pinned maps; each map is listed once, in load order.
  auto add = [&out](bpf_object *obj) {
    bpf_map *map;
    bpf_object__for_each_map(map, obj) {
      if (std::any_of(out.begin(), out.end(),
                      [&](const MapInfo &m) { return m.name == bpf_map__name(map); }))
        continue;
      MapInfo info;
      info.name = bpf_map__name(map);
      const char *type = libbpf_bpf_map_type_str(bpf_map__type(map));
      info.type = type ? type : "unknown";
      info.max_entries = bpf_map__max_entries(map);
      bpf_map_info kernel{};
      uint32_t len = sizeof(kernel);
      if (bpf_obj_get_info_by_fd(bpf_map__fd(map), &kernel, &len) == 0) info.id = kernel.id;
      out.push_back(info);
    }
  };
  add(skel_->obj);
  add(capture_->obj);
  if (fastpath_) add(fastpath_->obj);
  return out;
}

void Datapath::uninstall(const std::string &node) {
  std::string dir = paths::pin_dir(node);
  DIR *d = opendir(dir.c_str());
  if (!d) {
    if (errno == ENOENT) return;
    fail("open " + dir, errno);
  }
  std::vector<std::string> names;
  while (dirent *entry = readdir(d)) {
    std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  closedir(d);
  // Links first: unpinning the last reference to a link detaches its program.
  std::sort(names.begin(), names.end(), [](const std::string &a, const std::string &b) {
    return (a.rfind("link_", 0) == 0) > (b.rfind("link_", 0) == 0);
  });
  for (const auto &name : names) {
    std::string path = dir + "/" + name;
    if (name.rfind("link_", 0) == 0) {
      // Detach before unpinning: dropping the last reference releases the link from a workqueue
      // on newer kernels (seen on 6.12), so without this a connect() right after uninstall could
      // still be balanced.
      UniqueFd link(bpf_obj_get(path.c_str()));
      if (link.valid() && bpf_link_detach(link.get()) != 0 && errno != EINVAL && errno != ENOLINK)
        fail("detach link " + path, errno);
    }
    if (unlink(path.c_str()) != 0 && errno != ENOENT) fail("remove pin " + path, errno);
  }
  if (rmdir(dir.c_str()) != 0 && errno != ENOENT) fail("remove " + dir, errno);
}

std::string cgroup2_mount() {
  std::ifstream mounts("/proc/mounts");
  std::string device, path, type, rest;
  while (mounts >> device >> path >> type && std::getline(mounts, rest))
    if (type == "cgroup2") return path;
  throw std::runtime_error("no cgroup v2 file system is mounted (see /proc/mounts)");
}

std::string own_cgroup() {
  std::ifstream file("/proc/self/cgroup");
  std::string line;
  while (std::getline(file, line))
    if (line.rfind("0::", 0) == 0) return line.substr(3);
  throw std::runtime_error("this process has no cgroup v2 membership (/proc/self/cgroup)");
}

}  // namespace sockmesh::loader
