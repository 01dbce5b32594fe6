// mdmlkit HDNNP model: n2p2-format files -> atomic energies and gradients (see hdnnp_model.h).
//
// Symmetry functions (distances r in Å, R_u(r) = exp(-eta (r - rs)^2) fc(r)):
//   type 2: G = sum_j R(r_ij)
//   type 9: G = 2^(1-zeta) sum_{j<k} (1 + lambda cos theta_ijk)^zeta R(r_ij) R(r_ik)
//   type 3: as type 9 times R(r_jk)
// (terms with 1 + lambda cos <= 0 are zero).  Type 9 with integer zeta and |lambda| <= 1 is
// evaluated linearly in the neighbours through Cartesian moments of the unit vectors u_j:
//   (u_j . u_k)^n = sum_{|a| = n} n!/(a_x! a_y! a_z!) u_j^a u_k^a, so with
//   T_{u,e,a} = sum_{j in e} R_u(r_ij) u_j^a   and   Q_n = sum_{|a|=n} w_a T_{u,e1,a} T_{u,e2,a},
//   sum_{j in e1, k in e2} (1 + lambda cos)^zeta R_j R_k = sum_n C(zeta, n) lambda^n Q_n,
// halved and with the j = k terms (1 + lambda)^zeta sum_j R_j^2 removed for e1 == e2.
// Per neighbour only the reduced monomials x^a y^b z^c with c <= 1 are accumulated (on the unit
// sphere z^2 = 1 - x^2 - y^2), (nmax + 1)^2 of them; the full moments follow per atom by a sparse
// map, and gradients use d p(d/r)/dd = (grad p - (u . grad p) u) / r for any extension p.
// Other angular functions run over explicit triplets.
#include "hdnnp_model.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <tuple>

namespace mdmlkit_lmp {

namespace {

const char *const SYMBOLS[] = {
    "X",  "H",  "He", "Li", "Be", "B",  "C",  "N",  "O",  "F",  "Ne", "Na", "Mg", "Al", "Si",
    "P",  "S",  "Cl", "Ar", "K",  "Ca", "Sc", "Ti", "V",  "Cr", "Mn", "Fe", "Co", "Ni", "Cu",
    "Zn", "Ga", "Ge", "As", "Se", "Br", "Kr", "Rb", "Sr", "Y",  "Zr", "Nb", "Mo", "Tc", "Ru",
    "Rh", "Pd", "Ag", "Cd", "In", "Sn", "Sb", "Te", "I",  "Xe", "Cs", "Ba", "La", "Ce", "Pr",
    "Nd", "Pm", "Sm", "Eu", "Gd", "Tb", "Dy", "Ho", "Er", "Tm", "Yb", "Lu", "Hf", "Ta", "W",
    "Re", "Os", "Ir", "Pt", "Au", "Hg", "Tl", "Pb", "Bi", "Po", "At", "Rn", "Fr", "Ra", "Ac",
    "Th", "Pa", "U",  "Np", "Pu", "Am", "Cm", "Bk", "Cf", "Es", "Fm", "Md", "No", "Lr", "Rf",
    "Db", "Sg", "Bh", "Hs", "Mt", "Ds", "Rg", "Cn", "Nh", "Fl", "Mc", "Lv", "Ts", "Og"};
const int N_SYMBOLS = sizeof(SYMBOLS) / sizeof(SYMBOLS[0]);

int atomic_number(const std::string &s)
{
  for (int z = 1; z < N_SYMBOLS; ++z)
    if (s == SYMBOLS[z]) return z;
  return 0;
}

std::string where(const std::string &path, int line)
{
  return line > 0 ? path + ", line " + std::to_string(line) + ": " : path + ": ";
}

[[noreturn]] void fail(const std::string &path, int line, const std::string &msg)
{
  throw ModelError(where(path, line) + msg);
}

double to_double(const std::string &tok, const std::string &path, int line, const std::string &what)
{
  std::string t = tok;
  for (auto &c : t)
    if (c == 'D' || c == 'd') c = 'e';    // Fortran exponents
  char *end = nullptr;
  errno = 0;
  double v = std::strtod(t.c_str(), &end);
  if (t.empty() || end == t.c_str() || *end != '\0')
    fail(path, line, "cannot read " + what + " from '" + tok + "'");
  if (!std::isfinite(v)) fail(path, line, "non-finite " + what + " '" + tok + "'");
  return v;
}

int to_int(const std::string &tok, const std::string &path, int line, const std::string &what)
{
  char *end = nullptr;
  long v = std::strtol(tok.c_str(), &end, 10);
  if (tok.empty() || *end != '\0')
    fail(path, line, "cannot read " + what + " (integer) from '" + tok + "'");
  return (int)v;
}

std::vector<std::string> split(const std::string &s)
{
  std::istringstream is(s);
  std::vector<std::string> out;
  std::string t;
  while (is >> t) out.push_back(t);
  return out;
}

// calls fn(tokens, line number) for every line of `in` that is neither blank nor a '#' comment
template <class F> void for_each_data_line(std::istream &in, F &&fn)
{
  std::string raw;
  int lineno = 0;
  while (std::getline(in, raw)) {
    ++lineno;
    auto tok = split(raw);
    if (tok.empty() || tok[0][0] == '#') continue;
    fn(tok, lineno);
  }
}

// cutoff function value and derivative (1/Å) for n2p2 cutoff types 0..8
inline void cutoff_fn(int type, double alpha, double rc, double r, double &f, double &df)
{
  f = 0.0;
  df = 0.0;
  if (r >= rc) return;
  if (type == 0) {
    f = 1.0;
    return;
  }
  if (type == 2 || type == 3) {
    double t = std::tanh(1.0 - r / rc);
    double pre = 1.0;
    if (type == 3) {
      double t1 = std::tanh(1.0);
      pre = 1.0 / (t1 * t1 * t1);
    }
    f = pre * t * t * t;
    df = -pre * 3.0 * t * t * (1.0 - t * t) / rc;
    return;
  }
  double rci = alpha * rc;
  if (r <= rci) {
    f = 1.0;
    return;
  }
  double dxdr = 1.0 / (rc - rci);
  double x = (r - rci) * dxdr;
  double x2 = x * x;
  switch (type) {
    case 1:
      f = 0.5 * (std::cos(M_PI * x) + 1.0);
      df = -0.5 * M_PI * std::sin(M_PI * x);
      break;
    case 4: {
      double q = 1.0 - x2;
      f = std::exp(1.0 - 1.0 / q);
      df = -f * 2.0 * x / (q * q);
      break;
    }
    case 5:
      f = (2.0 * x - 3.0) * x2 + 1.0;
      df = 6.0 * x2 - 6.0 * x;
      break;
    case 6:
      f = ((15.0 - 6.0 * x) * x - 10.0) * x2 * x + 1.0;
      df = x2 * ((60.0 - 30.0 * x) * x - 30.0);
      break;
    case 7:
      f = (x * (x * (20.0 * x - 70.0) + 84.0) - 35.0) * x2 * x2 + 1.0;
      df = x2 * x * (x * (x * (140.0 * x - 420.0) + 420.0) - 140.0);
      break;
    default:    // 8
      f = (x * (x * ((315.0 - 70.0 * x) * x - 540.0) + 420.0) - 126.0) * x2 * x2 * x + 1.0;
      df = x2 * x2 * (x * (x * ((2520.0 - 630.0 * x) * x - 3780.0) + 2520.0) - 630.0);
      break;
  }
  df *= dxdr;
}

// R = exp(-eta (r - rs)^2) fc and dR/dr from the cutoff value fc and slope dfc at r
inline void gauss_times_cutoff(double eta, double rs, double r, double fc, double dfc, double &R, double &dR)
{
  const double d = r - rs, g = std::exp(-eta * d * d);
  R = g * fc;
  dR = g * (dfc - 2.0 * eta * d * fc);
}

// value and slope (1/Å) of a quintic table piece c[0..5] at s = r / h - interval (invh = 1/h)
inline void quintic(const double *c, double s, double invh, double &v, double &d)
{
  v = c[0] + s * (c[1] + s * (c[2] + s * (c[3] + s * (c[4] + s * c[5]))));
  d = invh * (c[1] + s * (2.0 * c[2] + s * (3.0 * c[3] + s * (4.0 * c[4] + s * 5.0 * c[5]))));
}

inline void activation(char a, double z, double &y, double &dy)
{
  switch (a) {
    case 'l': y = z; dy = 1.0; break;
    case 't':      // 1 - 2 / (e^2z + 1): one exp instead of glibc's tanh (expm1 and more);
                   // absolute error ~2e-16, also for large |z| (e^2z -> inf or 0)
      y = 1.0 - 2.0 / (std::exp(2.0 * z) + 1.0);
      dy = 1.0 - y * y;
      break;
    case 's': y = 1.0 / (1.0 + std::exp(-z)); dy = y * (1.0 - y); break;
    case 'p':
      if (z > 35.0) { y = z; dy = 1.0; }
      else { y = std::log1p(std::exp(z)); dy = 1.0 / (1.0 + std::exp(-z)); }
      break;
    case 'r': y = z > 0.0 ? z : 0.0; dy = z > 0.0 ? 1.0 : 0.0; break;
    case 'g': y = std::exp(-0.5 * z * z); dy = -z * y; break;
    case 'c': y = std::cos(z); dy = -std::sin(z); break;
    case 'S': { double s = 1.0 / (1.0 + std::exp(-z)); y = 1.0 - s; dy = -s * (1.0 - s); break; }
    case 'e': y = std::exp(-z); dy = -y; break;
    default: y = z * z; dy = 2.0 * z; break;    // 'h'
  }
}

double binom(int n, int k)
{
  double c = 1.0;
  for (int i = 1; i <= k; ++i) c = c * (n - k + i) / i;
  return c;
}

double factorial(int n)
{
  double f = 1.0;
  for (int i = 2; i <= n; ++i) f *= i;
  return f;
}

const int MAX_MOMENT_ZETA = 12;

struct RawFn {
  int central, type, e1, e2;
  double eta, rs, rc, lambda, zeta;
  std::string text;
};

}    // namespace

// ---------------------------------------------------------------------------------------------

Model::Model(const std::string &dir, bool force_triplets, bool tabulate) : dir_(dir)
{
  read_input_nn(dir + "/input.nn", force_triplets);
  for (int e = 0; e < n_elements(); ++e) {
    char name[32];
    std::snprintf(name, sizeof(name), "weights.%03d.data", elements[e].z);
    read_weights(e, dir + "/" + name);
  }
  if (tabulate) build_tables(1e-10);
}

// ---------------------------------------------------------------------------------------------
// Radial tables

namespace {

// R, dR/dr and d2R/dr2 of exp(-eta (r - rs)^2) fc(r); d2R from a second-order one-sided
// difference of the exact dR/dr on the side `dir` (+1: r and above, -1: r and below), so that
// every piece matches the one-sided limits of a cutoff whose curvature jumps (alpha rc, rc).
struct RadialFactor {
  double eta, rs, rc;
  int type;
  double alpha;
  void slope(double r, double &f, double &df) const
  {
    double fc, dfc;
    cutoff_fn(type, alpha, rc, r, fc, dfc);
    gauss_times_cutoff(eta, rs, r, fc, dfc, f, df);
  }
  void eval(double r, int dir, double &f, double &df, double &d2f) const
  {
    const double x = std::nextafter(r, dir > 0 ? HUGE_VAL : -HUGE_VAL);
    const double eps = 1e-4 * dir;
    double f1, df1, f2, df2;
    slope(x, f, df);
    slope(x + eps, f1, df1);
    slope(x + 2.0 * eps, f2, df2);
    d2f = (-3.0 * df + 4.0 * df1 - df2) / (2.0 * eps);
  }
};

// Quintic Hermite pieces of the factors on a grid of [0, rc], spacing halved from 0.05 Å until
// the largest error of values and of slopes x 1 Å at 9 points inside every interval is below
// `tol` (or the spacing is below 0.002 Å); a node on alpha rc where the grid allows it.  Returns
// the largest error.
double tabulate(const std::vector<RadialFactor> &fs, double rc, double alpha, double tol,
                RadialTable &T)
{
  const int K = (int)fs.size();
  double h = 0.05, err = HUGE_VAL;
  while (true) {
    int n = std::max(1, (int)std::ceil(rc / h - 1e-9));
    if (alpha > 0.0)
      for (int m = n; m <= 4 * n; ++m)
        if (std::fabs(alpha * m - std::round(alpha * m)) < 1e-9) { n = m; break; }
    h = rc / n;
    T.rc = rc;
    T.h = h;
    T.invh = 1.0 / h;
    T.n_int = n;
    T.K = K;
    T.coef.assign((size_t)n * K * 6, 0.0);
    for (int i = 0; i < n; ++i)
      for (int k = 0; k < K; ++k) {
        double f0, d10, d20, f1, d11, d21;
        fs[k].eval(i * h, +1, f0, d10, d20);
        fs[k].eval(i + 1 == n ? rc : (i + 1) * h, -1, f1, d11, d21);
        const double c0 = f0, c1 = h * d10, c2 = 0.5 * h * h * d20;
        const double A = f1 - c0 - c1 - c2, B = h * d11 - c1 - 2.0 * c2, C = h * h * d21 - 2.0 * c2;
        double *c = &T.coef[((size_t)i * K + k) * 6];
        c[0] = c0;
        c[1] = c1;
        c[2] = c2;
        c[3] = 10.0 * A - 4.0 * B + 0.5 * C;
        c[4] = -15.0 * A + 7.0 * B - C;
        c[5] = 6.0 * A - 3.0 * B + 0.5 * C;
      }
    err = 0.0;
    for (int i = 0; i < n; ++i)
      for (int q = 0; q < 9; ++q) {
        const double s = 0.05 + 0.1125 * q, r = (i + s) * h;
        for (int k = 0; k < K; ++k) {
          double v, d, f, df;
          quintic(&T.coef[((size_t)i * K + k) * 6], s, T.invh, v, d);
          fs[k].slope(r, f, df);
          err = std::max(err, std::max(std::fabs(v - f), std::fabs(d - df)));
        }
      }
    if (err < tol || h < 0.002) return err;
    h *= 0.5;
  }
}

}    // namespace

void Model::build_tables(double tol)
{
  std::vector<std::vector<RadialTable>> all(elements.size());
  double worst = 0.0;
  for (size_t e = 0; e < elements.size(); ++e) {
    Element &E = elements[e];
    // distinct factors (eta, rs, rc) of the radial and the moment functions, by cutoff
    std::vector<std::array<double, 3>> keys;
    auto key_of = [&](double eta, double rs, double rc) {
      for (size_t q = 0; q < keys.size(); ++q)
        if (keys[q][0] == eta && keys[q][1] == rs && keys[q][2] == rc) return (int)q;
      keys.push_back({eta, rs, rc});
      return (int)keys.size() - 1;
    };
    std::vector<int> key_rad, key_mom, key_trip;
    for (auto &f : E.radial) key_rad.push_back(key_of(f.eta, f.rs, f.rc));
    for (auto &u : E.mom_u) key_mom.push_back(key_of(u.eta, u.rs, u.rc));
    for (auto &t : E.trip_fac) key_trip.push_back(key_of(t[0], t[1], t[2]));
    std::vector<int> col(keys.size(), -1);
    int ncol = 0;
    for (double rc : E.rcs) {
      std::vector<RadialFactor> fs;
      std::vector<int> members;
      for (size_t q = 0; q < keys.size(); ++q)
        if (keys[q][2] == rc) {
          fs.push_back({keys[q][0], keys[q][1], rc, cutoff_type_, cutoff_alpha_});
          members.push_back((int)q);
        }
      if (fs.empty()) continue;
      RadialTable T;
      worst = std::max(worst, tabulate(fs, rc, cutoff_alpha_, tol, T));
      T.col = ncol;
      for (size_t m = 0; m < members.size(); ++m) col[members[m]] = ncol + (int)m;
      ncol += T.K;
      E.tab_of_col.insert(E.tab_of_col.end(), T.K, (int)all[e].size());
      all[e].push_back(std::move(T));
    }
    for (size_t q = 0; q < E.radial.size(); ++q) E.radial[q].tab_col = col[key_rad[q]];
    for (size_t q = 0; q < E.mom_u.size(); ++q) E.mom_u[q].tab_col = col[key_mom[q]];
    E.trip_tab_col.assign(E.trip_fac.size(), -1);
    for (size_t q = 0; q < E.trip_fac.size(); ++q) E.trip_tab_col[q] = col[key_trip[q]];
    E.n_tab_cols = ncol;
  }
  table_error_ = worst;
  if (worst >= tol) {          // a factor too sharp for the finest grid: everything exact
    for (auto &E : elements) {
      for (auto &f : E.radial) f.tab_col = -1;
      for (auto &u : E.mom_u) u.tab_col = -1;
      E.trip_tab_col.assign(E.trip_fac.size(), -1);
      E.n_tab_cols = 0;
      E.tab_of_col.clear();
      E.tables.clear();
    }
    return;
  }
  for (size_t e = 0; e < elements.size(); ++e) elements[e].tables = std::move(all[e]);
  tabulated_ = true;
}

int Model::element_index(const std::string &symbol) const
{
  for (int e = 0; e < n_elements(); ++e)
    if (elements[e].symbol == symbol) return e;
  return -1;
}

std::string Model::element_list() const
{
  std::string s;
  for (auto &e : elements) s += (s.empty() ? "" : " ") + e.symbol;
  return s;
}

void Model::read_input_nn(const std::string &path, bool force_triplets)
{
  std::ifstream in(path);
  if (!in) fail(path, 0, "cannot open the model's input.nn (no such file or not readable)");
  std::map<std::string, std::vector<std::pair<std::vector<std::string>, int>>> kw;
  std::string raw;
  int lineno = 0;
  while (std::getline(in, raw)) {
    ++lineno;
    auto hash = raw.find('#');
    if (hash != std::string::npos) raw = raw.substr(0, hash);
    auto tok = split(raw);
    if (tok.empty()) continue;
    std::string key = tok[0];
    tok.erase(tok.begin());
    kw[key].push_back({tok, lineno});
  }
  auto one = [&](const std::string &key, bool required,
                 std::vector<std::string> &val) -> int {
    auto it = kw.find(key);
    if (it == kw.end() || it->second.empty()) {
      if (required) fail(path, 0, "no '" + key + "' keyword (required)");
      return 0;
    }
    if (it->second.size() > 1)
      fail(path, it->second[1].second, "keyword '" + key + "' given more than once");
    val = it->second[0].first;
    return it->second[0].second;
  };
  std::vector<std::string> v;
  int ln;

  if ((ln = one("nnp_type", false, v))) {
    if (v.empty() || (v[0] != "2G-HDNNP" && v[0] != "2G" && v[0] != "1"))
      fail(path, ln, "only short-range 2G-HDNNPs are supported (nnp_type)");
  }
  ln = one("elements", true, v);
  if (v.empty()) fail(path, ln, "'elements' lists no element");
  for (auto &s : v) {
    int z = atomic_number(s);
    if (!z) fail(path, ln, "'" + s + "' is not a chemical element symbol");
    for (auto &e : elements)
      if (e.symbol == s) fail(path, ln, "element " + s + " listed twice");
    Element e;
    e.symbol = s;
    e.z = z;
    elements.push_back(e);
  }
  const int nel = n_elements();
  if ((ln = one("number_of_elements", false, v))) {
    if (v.size() != 1 || to_int(v[0], path, ln, "number_of_elements") != nel)
      fail(path, ln, "number_of_elements disagrees with the " + std::to_string(nel) +
                         " elements listed");
  }
  ln = one("cutoff_type", true, v);
  if (v.empty() || v.size() > 2) fail(path, ln, "expected 'cutoff_type <type> [<alpha>]'");
  const int cut_type = to_int(v[0], path, ln, "cutoff type");
  const double cut_alpha = v.size() > 1 ? to_double(v[1], path, ln, "cutoff alpha") : 0.0;
  if (cut_type < 0 || cut_type > 8) fail(path, ln, "cutoff type must be 0..8");
  if (!(cut_alpha >= 0.0 && cut_alpha < 1.0)) fail(path, ln, "cutoff alpha outside [0, 1)");
  cutoff_type_ = cut_type;
  cutoff_alpha_ = cut_alpha;

  std::string mode = "none";
  bool sc = kw.count("scale_symmetry_functions"), ce = kw.count("center_symmetry_functions");
  if (sc) mode = ce ? "center_scale" : "scale";
  else if (ce) mode = "center";
  else if (kw.count("scale_symmetry_functions_sigma")) mode = "scale_sigma";
  double smin = 0.0, smax = 1.0;
  if ((ln = one("scale_min_short", false, v))) {
    if (v.size() != 1) fail(path, ln, "scale_min_short needs one number");
    smin = to_double(v[0], path, ln, "scale_min_short");
  }
  if ((ln = one("scale_max_short", false, v))) {
    if (v.size() != 1) fail(path, ln, "scale_max_short needs one number");
    smax = to_double(v[0], path, ln, "scale_max_short");
  }

  // network topology
  ln = one("global_hidden_layers_short", true, v);
  if (v.size() != 1) fail(path, ln, "global_hidden_layers_short needs one integer");
  int nh = to_int(v[0], path, ln, "number of hidden layers");
  if (nh < 0) fail(path, ln, "negative number of hidden layers");
  int ln_nodes = one("global_nodes_short", true, v);
  if ((int)v.size() != nh)
    fail(path, ln_nodes, "global_nodes_short lists " + std::to_string(v.size()) +
                             " layers, global_hidden_layers_short says " + std::to_string(nh));
  std::vector<int> nodes;
  for (auto &t : v) {
    int n = to_int(t, path, ln_nodes, "number of nodes");
    if (n <= 0) fail(path, ln_nodes, "hidden-layer widths must be > 0");
    nodes.push_back(n);
  }
  int ln_act = one("global_activation_short", true, v);
  if ((int)v.size() != nh + 1)
    fail(path, ln_act, "global_activation_short needs " + std::to_string(nh + 1) + " letters");
  std::vector<char> acts;
  for (auto &t : v) {
    if (t.size() != 1 || std::string("ltsprgcSeh").find(t[0]) == std::string::npos)
      fail(path, ln_act, "unknown activation '" + t + "' (n2p2 letters: l t s p r g c S e h)");
    acts.push_back(t[0]);
  }
  std::vector<std::vector<int>> el_nodes(nel, nodes);
  std::vector<std::vector<char>> el_acts(nel, acts);
  auto element_arg = [&](const std::vector<std::string> &t, int l, const std::string &key) {
    if (t.size() < 2) fail(path, l, "'" + key + "' needs an element and values");
    int e = element_index(t[0]);
    if (e < 0) fail(path, l, key + " for '" + t[0] + "', which is not in 'elements'");
    return e;
  };
  for (auto &item : kw["element_hidden_layers_short"]) {
    int e = element_arg(item.first, item.second, "element_hidden_layers_short");
    int n = to_int(item.first[1], path, item.second, "number of hidden layers");
    if (n < 0) fail(path, item.second, "negative number of hidden layers");
    el_nodes[e].resize(n, 0);
    char out = el_acts[e].back();
    el_acts[e].resize(n, 't');
    el_acts[e].push_back(out);
  }
  for (auto &item : kw["element_nodes_short"]) {
    int e = element_arg(item.first, item.second, "element_nodes_short");
    if (item.first.size() - 1 != el_nodes[e].size())
      fail(path, item.second, "element_nodes_short: wrong number of widths");
    for (size_t k = 1; k < item.first.size(); ++k)
      el_nodes[e][k - 1] = to_int(item.first[k], path, item.second, "number of nodes");
  }
  for (auto &item : kw["element_activation_short"]) {
    int e = element_arg(item.first, item.second, "element_activation_short");
    if (item.first.size() - 1 != el_nodes[e].size() + 1)
      fail(path, item.second, "element_activation_short: wrong number of letters");
    for (size_t k = 1; k < item.first.size(); ++k) {
      auto &t = item.first[k];
      if (t.size() != 1 || std::string("ltsprgcSeh").find(t[0]) == std::string::npos)
        fail(path, item.second, "unknown activation '" + t + "'");
      el_acts[e][k - 1] = t[0];
    }
  }
  for (int e = 0; e < nel; ++e)
    for (int n : el_nodes[e])
      if (n <= 0) fail(path, 0, "element " + elements[e].symbol + ": hidden-layer width must be > 0");
  normalize_nodes_ = kw.count("normalize_nodes") > 0;

  for (auto &item : kw["atom_energy"]) {
    auto &t = item.first;
    if (t.size() != 2) fail(path, item.second, "'atom_energy' needs an element and a number");
    int e = element_index(t[0]);
    if (e < 0) fail(path, item.second, "atom_energy for '" + t[0] + "', which is not in 'elements'");
    elements[e].e0 = to_double(t[1], path, item.second, "atom energy");
  }
  int have_norm = kw.count("mean_energy") + kw.count("conv_energy") + kw.count("conv_length");
  if (have_norm) {
    if (have_norm != 3)
      fail(path, 0, "normalisation keywords incomplete (need mean_energy, conv_energy, conv_length)");
    double vals[3];
    const char *names[3] = {"mean_energy", "conv_energy", "conv_length"};
    for (int k = 0; k < 3; ++k) {
      ln = one(names[k], true, v);
      if (v.empty()) fail(path, ln, std::string(names[k]) + " needs a number");
      vals[k] = to_double(v[0], path, ln, names[k]);
    }
    if (vals[1] == 0.0) fail(path, 0, "conv_energy is 0");
    if (vals[2] != 1.0)
      fail(path, one("conv_length", true, v),
           "conv_length != 1 is not supported by pair_style mdmlkit (positions are used in Å)");
    for (auto &e : elements) e.e0 += vals[0];
    energy_scale = 1.0 / vals[1];
  }

  // symmetry functions
  auto it = kw.find("symfunction_short");
  if (it == kw.end() || it->second.empty()) fail(path, 0, "no 'symfunction_short' lines");
  std::vector<std::vector<RawFn>> per(nel);
  for (auto &item : it->second) {
    auto &t = item.first;
    int l = item.second;
    std::string text = "symfunction_short";
    for (auto &s : t) text += " " + s;
    if (t.size() < 2) fail(path, l, "incomplete symfunction_short line");
    RawFn f;
    f.central = element_index(t[0]);
    if (f.central < 0) fail(path, l, "element '" + t[0] + "' is not in 'elements'");
    f.type = to_int(t[1], path, l, "symmetry function type");
    f.text = text;
    if (f.type == 2) {
      if (t.size() != 6)
        fail(path, l, "type 2 needs 6 fields (<ec> 2 <e1> <eta> <rs> <rc>), got " +
                          std::to_string(t.size()));
      f.e1 = element_index(t[2]);
      if (f.e1 < 0) fail(path, l, "element '" + t[2] + "' is not in 'elements'");
      f.e2 = -1;
      f.eta = to_double(t[3], path, l, "eta");
      f.rs = to_double(t[4], path, l, "rs");
      f.rc = to_double(t[5], path, l, "rc");
      f.lambda = f.zeta = 0.0;
    } else if (f.type == 3 || f.type == 9) {
      if (t.size() != 8 && t.size() != 9)
        fail(path, l, "type " + t[1] + " needs 8 or 9 fields (<ec> " + t[1] +
                          " <e1> <e2> <eta> <lambda> <zeta> <rc> [<rs>]), got " +
                          std::to_string(t.size()));
      f.e1 = element_index(t[2]);
      f.e2 = element_index(t[3]);
      if (f.e1 < 0) fail(path, l, "element '" + t[2] + "' is not in 'elements'");
      if (f.e2 < 0) fail(path, l, "element '" + t[3] + "' is not in 'elements'");
      if (elements[f.e1].z > elements[f.e2].z) std::swap(f.e1, f.e2);
      f.eta = to_double(t[4], path, l, "eta");
      f.lambda = to_double(t[5], path, l, "lambda");
      f.zeta = to_double(t[6], path, l, "zeta");
      f.rc = to_double(t[7], path, l, "rc");
      f.rs = t.size() == 9 ? to_double(t[8], path, l, "rs") : 0.0;
      if (!(f.zeta > 0.0)) fail(path, l, "zeta must be positive");
    } else {
      fail(path, l, "symmetry function type " + t[1] + " is not supported (types 2, 3 and 9)");
    }
    if (!(f.rc > 0.0)) fail(path, l, "cutoff radius must be positive");
    if (!(f.eta >= 0.0)) fail(path, l, "eta must be non-negative");
    per[f.central].push_back(f);
  }

  for (int e = 0; e < nel; ++e) {
    Element &E = elements[e];
    auto &fs = per[e];
    if (fs.empty()) fail(path, 0, "no symmetry functions for element " + E.symbol);
    // n2p2 order: type, rc, eta, rs, zeta, lambda, Z(e1), Z(e2) (cutoff type/alpha are global)
    auto key = [&](const RawFn &f) {
      double zt = f.type == 2 ? 0.0 : f.zeta, lm = f.type == 2 ? 0.0 : f.lambda;
      int z2 = f.e2 >= 0 ? elements[f.e2].z : 0;
      return std::make_tuple(f.type, f.rc, f.eta, f.rs, zt, lm, elements[f.e1].z, z2);
    };
    std::stable_sort(fs.begin(), fs.end(),
                     [&](const RawFn &a, const RawFn &b) { return key(a) < key(b); });
    E.n_features = (int)fs.size();
    E.radial_by_el.assign(nel, {});
    std::map<std::tuple<double, double, double>, int> umap;
    std::map<std::tuple<int, int, int>, int> gmap;
    for (int i = 0; i < (int)fs.size(); ++i) {
      const RawFn &f = fs[i];
      E.lines.push_back(f.text);
      int rci = -1;
      for (size_t q = 0; q < E.rcs.size(); ++q)
        if (E.rcs[q] == f.rc) rci = (int)q;
      if (rci < 0) {
        rci = (int)E.rcs.size();
        E.rcs.push_back(f.rc);
      }
      E.rc_max = std::max(E.rc_max, f.rc);
      if (f.type == 2) {
        E.radial_by_el[f.e1].push_back((int)E.radial.size());
        E.radial.push_back({i, f.e1, f.eta, f.rs, f.rc, rci});
        continue;
      }
      AngularFn a;
      a.index = i;
      a.type = f.type;
      a.e1 = f.e1;
      a.e2 = f.e2;
      a.eta = f.eta;
      a.rs = f.rs;
      a.rc = f.rc;
      a.lambda = f.lambda;
      a.zeta = f.zeta;
      a.rc_index = rci;
      a.pref = std::pow(2.0, 1.0 - f.zeta);
      if (f.zeta == std::floor(f.zeta) && f.zeta >= 1.0 && f.zeta <= 64.0) a.zint = (int)f.zeta - 1;
      a.moment = !force_triplets && f.type == 9 && f.zeta == std::floor(f.zeta) &&
          f.zeta <= MAX_MOMENT_ZETA && std::fabs(f.lambda) <= 1.0;
      a.group = -1;
      if (a.moment) {
        auto uk = std::make_tuple(f.eta, f.rs, f.rc);
        int u;
        if (umap.count(uk)) u = umap[uk];
        else {
          u = umap[uk] = (int)E.mom_u.size();
          E.mom_u.push_back({f.eta, f.rs, f.rc, rci});
        }
        auto gk = std::make_tuple(u, f.e1, f.e2);
        int g;
        if (gmap.count(gk)) g = gmap[gk];
        else {
          g = gmap[gk] = (int)E.groups.size();
          E.groups.push_back({u, f.e1, f.e2, 0, {}});
        }
        int zeta = (int)f.zeta;
        a.group = g;
        E.groups[g].fns.push_back((int)E.angular.size());
        E.groups[g].nmax = std::max(E.groups[g].nmax, zeta);
        E.mom_nmax = std::max(E.mom_nmax, zeta);
        double half = f.e1 == f.e2 ? 0.5 : 1.0;
        a.coef.resize(zeta + 1);
        for (int n = 0; n <= zeta; ++n)
          a.coef[n] = half * a.pref * binom(zeta, n) * std::pow(f.lambda, n);
        a.diag = f.e1 == f.e2 ? -0.5 * a.pref * std::pow(1.0 + f.lambda, zeta) : 0.0;
      } else {
        E.triplet_fns.push_back((int)E.angular.size());
      }
      E.angular.push_back(a);
    }
    // explicit triplets: distinct radial factors and the functions of each element pair
    E.trip_pair.assign((size_t)nel * nel, {});
    E.trip_pair_r3.assign((size_t)nel * nel, 1);
    for (size_t p = 0; p < E.triplet_fns.size(); ++p) {
      const AngularFn &a = E.angular[E.triplet_fns[p]];
      int t = -1;
      for (size_t q = 0; q < E.trip_fac.size(); ++q)
        if (E.trip_fac[q][0] == a.eta && E.trip_fac[q][1] == a.rs && E.trip_fac[q][2] == a.rc) t = (int)q;
      if (t < 0) {
        t = (int)E.trip_fac.size();
        E.trip_fac.push_back({a.eta, a.rs, a.rc});
      }
      E.trip_fac_of.push_back(t);
      E.trip_pair[(size_t)a.e1 * nel + a.e2].push_back((int)p);
      if (a.e1 != a.e2) E.trip_pair[(size_t)a.e2 * nel + a.e1].push_back((int)p);
      if (a.type != 3) E.trip_pair_r3[(size_t)a.e1 * nel + a.e2] = E.trip_pair_r3[(size_t)a.e2 * nel + a.e1] = 0;
      E.trip_rc = std::max(E.trip_rc, a.rc);
    }
    // per neighbour element, radial functions by decreasing rc: a neighbour's loop stops at r >= rc
    for (auto &lst : E.radial_by_el)
      std::stable_sort(lst.begin(), lst.end(),
                       [&](int a, int b) { return E.radial[a].rc > E.radial[b].rc; });
    rc_max = std::max(rc_max, E.rc_max);
    build_monomials(std::max(mono_nmax, E.mom_nmax));
    build_reduced(mono_nmax);
  }
  read_scaling(dir_ + "/scaling.data", mode, smin, smax);
  for (int e = 0; e < nel; ++e) {
    Element &E = elements[e];
    std::vector<int> sizes{E.n_features};
    for (int n : el_nodes[e]) sizes.push_back(n);
    sizes.push_back(1);
    for (size_t l = 1; l < sizes.size(); ++l) {
      Layer L;
      L.n_in = sizes[l - 1];
      L.n_out = sizes[l];
      L.act = el_acts[e][l - 1];
      E.layers.push_back(L);
    }
  }
}

void Model::build_monomials(int nmax)
{
  if (nmax <= mono_nmax) return;
  mono_nmax = nmax;
  mono_a.clear(); mono_b.clear(); mono_c.clear(); mono_n.clear();
  mono_parent.clear(); mono_axis.clear(); mono_minus.clear(); mono_w.clear(); mono_start.clear();
  const int d = nmax + 1;
  std::vector<int> idx(d * d * d, -1);
  for (int n = 0; n <= nmax; ++n) {
    mono_start.push_back((int)mono_a.size());
    for (int a = n; a >= 0; --a)
      for (int b = n - a; b >= 0; --b) {
        int c = n - a - b;
        idx[(a * d + b) * d + c] = (int)mono_a.size();
        mono_a.push_back(a);
        mono_b.push_back(b);
        mono_c.push_back(c);
        mono_n.push_back(n);
        mono_w.push_back(factorial(n) / (factorial(a) * factorial(b) * factorial(c)));
      }
  }
  mono_start.push_back((int)mono_a.size());
  const int nm = (int)mono_a.size();
  mono_parent.assign(nm, -1);
  mono_axis.assign(nm, -1);
  mono_minus.assign(3 * nm, -1);
  for (int m = 0; m < nm; ++m) {
    int a = mono_a[m], b = mono_b[m], c = mono_c[m];
    if (a > 0) mono_minus[3 * m] = idx[((a - 1) * d + b) * d + c];
    if (b > 0) mono_minus[3 * m + 1] = idx[(a * d + b - 1) * d + c];
    if (c > 0) mono_minus[3 * m + 2] = idx[(a * d + b) * d + c - 1];
    for (int k = 0; k < 3; ++k)
      if (mono_minus[3 * m + k] >= 0) {
        mono_parent[m] = mono_minus[3 * m + k];
        mono_axis[m] = k;
        break;
      }
  }
}

// Reduced monomials x^a y^b z^c with c <= 1 (on the unit sphere z^2 = 1 - x^2 - y^2, so they
// span every polynomial of degree <= nmax there): (nmax + 1)^2 of them.  Degree d occupies
// [d^2, (d+1)^2): first x^a y^(d-a) for a = d..0, then z x^a y^(d-1-a) for a = d-1..0.
int Model::red_index(int a, int b, int c)
{
  const int d = a + b + c;
  return c == 0 ? d * d + (d - a) : d * d + d + 1 + (d - 1 - a);
}

void Model::fill_reduced(const double *u, int nmax, double *mono) const
{
  mono[0] = 1.0;
  for (int d = 1; d <= nmax; ++d) {
    const double *prev = mono + (d - 1) * (d - 1);    // x^a y^(d-1-a), a = d-1..0
    double *cur = mono + d * d;
    for (int i = 0; i < d; ++i) cur[i] = u[0] * prev[i];
    cur[d] = u[1] * prev[d - 1];
    for (int i = 0; i < d; ++i) cur[d + 1 + i] = u[2] * prev[i];
  }
}

void Model::build_reduced(int nmax)
{
  const int nr = red_size(nmax);
  red_minus.assign(3 * (size_t)nr, -1);
  red_pow.assign(3 * (size_t)nr, 0.0);
  for (int d = 0; d <= nmax; ++d) {
    for (int a = d; a >= 0; --a) {    // c = 0
      const int m = red_index(a, d - a, 0);
      if (a > 0) { red_minus[3 * m] = red_index(a - 1, d - a, 0); red_pow[3 * m] = a; }
      if (d - a > 0) { red_minus[3 * m + 1] = red_index(a, d - a - 1, 0); red_pow[3 * m + 1] = d - a; }
    }
    for (int a = d - 1; a >= 0; --a) {    // c = 1
      const int b = d - 1 - a, m = red_index(a, b, 1);
      if (a > 0) { red_minus[3 * m] = red_index(a - 1, b, 1); red_pow[3 * m] = a; }
      if (b > 0) { red_minus[3 * m + 1] = red_index(a, b - 1, 1); red_pow[3 * m + 1] = b; }
      red_minus[3 * m + 2] = red_index(a, b, 0);
      red_pow[3 * m + 2] = 1.0;
    }
  }
  // x^a y^b z^c = x^a y^b z^(c mod 2) (1 - x^2 - y^2)^k, k = c div 2
  const int nm = (int)mono_a.size();
  lmap_start.assign(1, 0);
  lmap_index.clear();
  lmap_coef.clear();
  for (int m = 0; m < nm; ++m) {
    const int a = mono_a[m], b = mono_b[m], c = mono_c[m], k = c / 2, cm = c % 2;
    for (int j = 0; j <= k; ++j)
      for (int l = 0; l <= k - j; ++l) {
        const double coef = factorial(k) / (factorial(k - j - l) * factorial(j) * factorial(l)) *
            ((j + l) % 2 ? -1.0 : 1.0);
        lmap_index.push_back(red_index(a + 2 * j, b + 2 * l, cm));
        lmap_coef.push_back(coef);
      }
    lmap_start.push_back((int)lmap_index.size());
  }
}

void Model::read_scaling(const std::string &path, const std::string &mode, double smin, double smax)
{
  const int nel = n_elements();
  std::vector<int> order(nel);    // n2p2 element index k (0-based) -> model element
  for (int e = 0; e < nel; ++e) order[e] = e;
  std::sort(order.begin(), order.end(),
            [&](int a, int b) { return elements[a].z < elements[b].z; });
  std::ifstream in(path);
  if (!in) {
    if (mode != "none")
      fail(path, 0, "cannot open the model's scaling.data (no such file or not readable)");
    for (auto &E : elements) {
      E.shift.assign(E.n_features, 0.0);
      E.factor.assign(E.n_features, 1.0);
      E.gmin.assign(E.n_features, -INFINITY);
      E.gmax.assign(E.n_features, INFINITY);
    }
    return;
  }
  std::vector<std::vector<std::array<double, 4>>> rows(nel);
  for_each_data_line(in, [&](const std::vector<std::string> &tok, int lineno) {
    if (tok.size() != 5 && tok.size() != 6)
      fail(path, lineno, "expected 5 or 6 columns (e_index sf_index min max mean [sigma]), got " +
                             std::to_string(tok.size()));
    int e = to_int(tok[0], path, lineno, "element index");
    int s = to_int(tok[1], path, lineno, "function index");
    if (e < 1 || e > nel)
      fail(path, lineno, "element index " + tok[0] + " outside 1.." + std::to_string(nel));
    auto &grp = rows[e - 1];
    if (s != (int)grp.size() + 1)
      fail(path, lineno, "function index " + tok[1] + " out of sequence (expected " +
                             std::to_string(grp.size() + 1) + ")");
    std::array<double, 4> r{};
    for (int k = 0; k < 3; ++k) r[k] = to_double(tok[2 + k], path, lineno, "statistic");
    r[3] = tok.size() == 6 ? to_double(tok[5], path, lineno, "sigma") : NAN;
    if (r[0] > r[1]) fail(path, lineno, "Gmin > Gmax");
    grp.push_back(r);
  });
  const double width = smax - smin;
  for (int k = 0; k < nel; ++k) {
    Element &E = elements[order[k]];
    if ((int)rows[k].size() != E.n_features)
      fail(path, 0, "element " + E.symbol + " (index " + std::to_string(k + 1) + ") has " +
                        std::to_string(rows[k].size()) + " functions in the scaling data but " +
                        std::to_string(E.n_features) + " in input.nn");
    E.shift.resize(E.n_features);
    E.factor.resize(E.n_features);
    E.gmin.resize(E.n_features);
    E.gmax.resize(E.n_features);
    E.offset = (mode == "none" || mode == "center") ? 0.0 : smin;
    for (int i = 0; i < E.n_features; ++i) {
      const auto &r = rows[k][i];
      E.gmin[i] = r[0];
      E.gmax[i] = r[1];
      double range = r[1] - r[0];
      double fac = 1.0, sh = 0.0;
      if (mode == "center") sh = r[2];
      else if (mode == "scale") { sh = r[0]; fac = range > 0 ? width / range : 0.0; }
      else if (mode == "center_scale") { sh = r[2]; fac = range > 0 ? width / range : 0.0; }
      else if (mode == "scale_sigma") {
        if (!std::isfinite(r[3])) fail(path, 0, "scale_symmetry_functions_sigma needs the sigma column");
        sh = r[2];
        fac = r[3] > 0 ? width / r[3] : 0.0;
      }
      E.shift[i] = sh;
      E.factor[i] = fac;
    }
  }
}

void Model::read_weights(int el, const std::string &path)
{
  Element &E = elements[el];
  std::ifstream in(path);
  if (!in) fail(path, 0, "cannot open the weights of " + E.symbol + " (no such file or not readable)");
  std::vector<double> vals;
  for_each_data_line(in, [&](const std::vector<std::string> &tok, int lineno) {
    vals.push_back(to_double(tok[0], path, lineno, "connection"));
  });
  size_t need = 0;
  for (auto &L : E.layers) need += (size_t)L.n_in * L.n_out + L.n_out;
  if (vals.size() != need) {
    std::string sizes = std::to_string(E.layers[0].n_in);
    for (auto &L : E.layers) sizes += "-" + std::to_string(L.n_out);
    fail(path, 0, std::to_string(vals.size()) + " connections, but the network of " + E.symbol +
                      " (" + sizes + ") needs " + std::to_string(need));
  }
  size_t pos = 0;
  for (auto &L : E.layers) {
    L.w.assign((size_t)L.n_in * L.n_out, 0.0);
    L.b.assign(L.n_out, 0.0);
    double div = normalize_nodes_ ? (double)L.n_in : 1.0;
    for (int j = 0; j < L.n_in; ++j)      // previous-layer neuron outer, this layer inner
      for (int k = 0; k < L.n_out; ++k) L.w[(size_t)k * L.n_in + j] = vals[pos++] / div;
    for (int k = 0; k < L.n_out; ++k) L.b[k] = vals[pos++] / div;
  }
}

// ---------------------------------------------------------------------------------------------

double Model::energy(int el, const std::vector<Neighbour> &nb, Workspace &ws, double tolerance,
                     int *n_extrapolated) const
{
  const Element &E = elements[el];
  const int nn = (int)nb.size();
  const int nf = E.n_features;
  const int nel = n_elements();
  const int nrc = (int)E.rcs.size();
  const int nrad = (int)E.radial.size();
  ws.G.assign(nf, 0.0);
  ws.grad.assign(3 * (size_t)nn, 0.0);

  const int NC = E.n_tab_cols;
  if (NC) {
    // all tabulated radial factors of every neighbour: one interval lookup per table
    ws.tv.resize((size_t)nn * NC);       // not zeroed: only columns of tables with r < rc are
    ws.td.resize((size_t)nn * NC);       // written, and only those are read (same r < rc tests)
    for (int k = 0; k < nn; ++k) {
      const double r = nb[k].r;
      for (const RadialTable &T : E.tables) {
        if (r >= T.rc) continue;
        const double x = r * T.invh;
        const int m = std::min((int)x, T.n_int - 1);
        const double s = x - m;
        const double *c = &T.coef[(size_t)m * T.K * 6];
        double *v = &ws.tv[(size_t)k * NC + T.col], *d = &ws.td[(size_t)k * NC + T.col];
        for (int q = 0; q < T.K; ++q, c += 6) quintic(c, s, T.invh, v[q], d[q]);
      }
    }
  } else {
    // cutoff functions per neighbour and distinct rc
    ws.fc.resize((size_t)nn * nrc);
    ws.dfc.resize((size_t)nn * nrc);
    for (int k = 0; k < nn; ++k)
      for (int q = 0; q < nrc; ++q)
        cutoff_fn(cutoff_type_, cutoff_alpha_, E.rcs[q], nb[k].r, ws.fc[k * nrc + q], ws.dfc[k * nrc + q]);
  }
  // R_f(r) and dR_f/dr of neighbour k: tabulated or exact
  auto factor = [&](int k, double eta, double rs, int rc_index, int tab_col, double &R, double &dR) {
    if (NC) {
      R = ws.tv[(size_t)k * NC + tab_col];
      dR = ws.td[(size_t)k * NC + tab_col];
      return;
    }
    const double fc = ws.fc[k * nrc + rc_index], dfc = ws.dfc[k * nrc + rc_index];
    if (fc == 0.0 && dfc == 0.0) {
      R = dR = 0.0;
      return;
    }
    gauss_times_cutoff(eta, rs, nb[k].r, fc, dfc, R, dR);
  };

  // radial functions (rad_dR not zeroed: the gradient loop below reads exactly the entries
  // written here, the same functions in the same order up to the same r >= rc break)
  ws.rad_dR.resize((size_t)nn * nrad);
  for (int k = 0; k < nn; ++k) {
    const double r = nb[k].r;
    for (int fi : E.radial_by_el[nb[k].el]) {
      const RadialFn &f = E.radial[fi];
      if (r >= f.rc) break;
      double R, dR;
      factor(k, f.eta, f.rs, f.rc_index, f.tab_col, R, dR);
      ws.G[f.index] += R;
      ws.rad_dR[(size_t)k * nrad + fi] = dR;
    }
  }

  // angular functions through moments
  const int nu = (int)E.mom_u.size();
  const int NM = E.groups.empty() ? 0 : mono_start[E.mom_nmax + 1];
  if (nu) {
    const int NR = red_size(E.mom_nmax);
    ws.Tr.assign((size_t)nu * nel * NR, 0.0);
    ws.T.assign((size_t)nu * nel * NM, 0.0);
    ws.D.assign((size_t)nu * nel, 0.0);
    ws.uR.assign((size_t)nn * nu, 0.0);
    ws.udR.assign((size_t)nn * nu, 0.0);
    ws.mono.resize(NR);
    double *mono = ws.mono.data();
    for (int k = 0; k < nn; ++k) {
      const double r = nb[k].r, inv = 1.0 / r;
      const double u[3] = {nb[k].d[0] * inv, nb[k].d[1] * inv, nb[k].d[2] * inv};
      bool any = false;
      for (int q = 0; q < nu; ++q) {
        const MomentRadial &U = E.mom_u[q];
        if (r >= U.rc) continue;
        double R, dR;
        factor(k, U.eta, U.rs, U.rc_index, U.tab_col, R, dR);
        if (R == 0.0 && dR == 0.0) continue;
        ws.uR[(size_t)k * nu + q] = R;
        ws.udR[(size_t)k * nu + q] = dR;
        any = true;
      }
      if (!any) continue;
      fill_reduced(u, E.mom_nmax, mono);
      for (int q = 0; q < nu; ++q) {
        const double R = ws.uR[(size_t)k * nu + q];
        if (R == 0.0) continue;
        double *T = &ws.Tr[((size_t)q * nel + nb[k].el) * NR];
        for (int m = 0; m < NR; ++m) T[m] += R * mono[m];
        ws.D[q * nel + nb[k].el] += R * R;
      }
    }
    // full monomial moments from the reduced ones (on the unit sphere z^2 = 1 - x^2 - y^2)
    for (int qe = 0; qe < nu * nel; ++qe) {
      const double *Tr = &ws.Tr[(size_t)qe * NR];
      double *T = &ws.T[(size_t)qe * NM];
      for (int m = 0; m < NM; ++m) {
        double t = 0.0;
        for (int p = lmap_start[m]; p < lmap_start[m + 1]; ++p) t += lmap_coef[p] * Tr[lmap_index[p]];
        T[m] = t;
      }
    }
    const int ng = (int)E.groups.size();
    const int QS = E.mom_nmax + 1;
    ws.Q.assign((size_t)ng * QS, 0.0);
    for (int g = 0; g < ng; ++g) {
      const MomentGroup &Gr = E.groups[g];
      const double *T1 = &ws.T[((size_t)Gr.u * nel + Gr.e1) * NM];
      const double *T2 = &ws.T[((size_t)Gr.u * nel + Gr.e2) * NM];
      double *Q = &ws.Q[(size_t)g * QS];
      for (int n = 0; n <= Gr.nmax; ++n) {
        double s = 0.0;
        for (int m = mono_start[n]; m < mono_start[n + 1]; ++m) s += mono_w[m] * T1[m] * T2[m];
        Q[n] = s;
      }
      for (int fi : Gr.fns) {
        const AngularFn &a = E.angular[fi];
        double s = a.diag * ws.D[Gr.u * nel + Gr.e1];
        for (size_t n = 0; n < a.coef.size(); ++n) s += a.coef[n] * Q[n];
        ws.G[a.index] = s;
      }
    }
  }

  // angular functions through explicit triplets.  Per neighbour the triplet factors R(r_ij)
  // (tabulated, or exact with table no) once; the triplets (j < k, both within the triplets' largest rc, a function for
  // their element pair) listed once with R(r_jk) of every factor; the forward pass and, after
  // the network, the reverse pass run over that list and each pair's own functions.
  const int NT = (int)E.trip_fac.size();
  auto triplet_factor = [&](int t, double r, double &R, double &dR) {
    const auto &F = E.trip_fac[t];
    R = dR = 0.0;
    if (r >= F[2]) return;
    if (NC) {                  // from the factor's table column
      const int col = E.trip_tab_col[t];
      const RadialTable &T = E.tables[E.tab_of_col[col]];
      const double x = r * T.invh;
      const int m = std::min((int)x, T.n_int - 1);
      quintic(&T.coef[((size_t)m * T.K + (col - T.col)) * 6], x - m, T.invh, R, dR);
      return;
    }
    double fc, dfc;
    cutoff_fn(cutoff_type_, cutoff_alpha_, F[2], r, fc, dfc);
    gauss_times_cutoff(F[0], F[1], r, fc, dfc, R, dR);
  };
  auto angular_power = [](const AngularFn &a, double base, double &A, double &q) {
    // A = base^zeta, q = base^(zeta - 1)
    if (a.zint >= 0) {
      q = 1.0;
      for (int z = 0; z < a.zint; ++z) q *= base;
    } else {
      q = std::pow(base, a.zeta - 1.0);
    }
    A = q * base;
  };
  auto triplets = [&](bool backward) {
    const int nm = (int)ws.tj.size();
    for (int m = 0; m < nm; ++m) {
      const int j = ws.tj[m], k = ws.tk[m];
      const double rj = nb[j].r, rk = nb[k].r;
      const double *dj = nb[j].d, *dk = nb[k].d;
      const double dot = dj[0] * dk[0] + dj[1] * dk[1] + dj[2] * dk[2];
      const double cs = dot / (rj * rk);
      const double djk[3] = {dk[0] - dj[0], dk[1] - dj[1], dk[2] - dj[2]};
      const double rjk = std::sqrt(djk[0] * djk[0] + djk[1] * djk[1] + djk[2] * djk[2]);
      // dE/dcos, dE/dr_ij, dE/dr_ik, dE/dr_jk of this triplet, summed over its functions
      double gc = 0.0, gj = 0.0, gk = 0.0, gjk = 0.0;
      for (int p : E.trip_pair[(size_t)nb[j].el * nel + nb[k].el]) {
        const AngularFn &a = E.angular[E.triplet_fns[p]];
        if (rj >= a.rc || rk >= a.rc) continue;
        const int t = E.trip_fac_of[p];
        double Rjk = 1.0, dRjk = 0.0;
        if (a.type == 3) {
          if (rjk >= a.rc) continue;
          Rjk = ws.tRjk[(size_t)m * NT + t];
          dRjk = ws.tdRjk[(size_t)m * NT + t];
        }
        const double base = 1.0 + a.lambda * cs;
        if (base <= 0.0) continue;
        double A, q;
        angular_power(a, base, A, q);
        const double Rj = ws.tR[(size_t)j * NT + t], Rk = ws.tR[(size_t)k * NT + t];
        if (!backward) {
          ws.G[a.index] += a.pref * A * Rj * Rk * Rjk;
          continue;
        }
        const double c = ws.dEdG[a.index] * a.pref;
        if (c == 0.0) continue;
        const double cA = c * A;
        gc += c * a.zeta * a.lambda * q * Rj * Rk * Rjk;
        gj += cA * ws.tdR[(size_t)j * NT + t] * Rk * Rjk;
        gk += cA * Rj * ws.tdR[(size_t)k * NT + t] * Rjk;
        gjk += cA * Rj * Rk * dRjk;
      }
      if (!backward || (gc == 0.0 && gj == 0.0 && gk == 0.0 && gjk == 0.0)) continue;
      // cos = d_j . d_k / (r_j r_k), r_jk = |d_k - d_j|
      const double irr = 1.0 / (rj * rk);
      const double qj = gj / rj, qk = gk / rk, qjk = rjk > 0.0 ? gjk / rjk : 0.0;
      for (int x = 0; x < 3; ++x) {
        const double dcj = dk[x] * irr - cs * dj[x] / (rj * rj);
        const double dck = dj[x] * irr - cs * dk[x] / (rk * rk);
        ws.grad[3 * j + x] += gc * dcj + qj * dj[x] - qjk * djk[x];
        ws.grad[3 * k + x] += gc * dck + qk * dk[x] + qjk * djk[x];
      }
    }
  };
  if (NT) {
    ws.tR.resize((size_t)nn * NT);
    ws.tdR.resize((size_t)nn * NT);
    for (int k = 0; k < nn; ++k)
      for (int t = 0; t < NT; ++t) {
        double &R = ws.tR[(size_t)k * NT + t], &dR = ws.tdR[(size_t)k * NT + t];
        if (NC && nb[k].r < E.trip_fac[t][2]) {      // already in the neighbour's table values
          R = ws.tv[(size_t)k * NC + E.trip_tab_col[t]];
          dR = ws.td[(size_t)k * NC + E.trip_tab_col[t]];
        } else {
          triplet_factor(t, nb[k].r, R, dR);
        }
      }
    ws.tj.clear();
    ws.tk.clear();
    ws.tRjk.clear();
    ws.tdRjk.clear();
    for (int j = 0; j < nn; ++j) {
      if (nb[j].r >= E.trip_rc) continue;
      for (int k = j + 1; k < nn; ++k) {
        if (nb[k].r >= E.trip_rc || E.trip_pair[(size_t)nb[j].el * nel + nb[k].el].empty()) continue;
        const double *dj = nb[j].d, *dk = nb[k].d;
        const double x = dk[0] - dj[0], y = dk[1] - dj[1], z = dk[2] - dj[2];
        const double rjk = std::sqrt(x * x + y * y + z * z);
        if (rjk >= E.trip_rc && E.trip_pair_r3[(size_t)nb[j].el * nel + nb[k].el]) continue;
        ws.tj.push_back(j);
        ws.tk.push_back(k);
        for (int t = 0; t < NT; ++t) {
          double R, dR;
          triplet_factor(t, rjk, R, dR);
          ws.tRjk.push_back(R);
          ws.tdRjk.push_back(dR);
        }
      }
    }
  }
  if (!E.triplet_fns.empty()) triplets(false);

  // scaling, extrapolation count, network
  int nx = 0;
  ws.x.resize(nf);
  for (int i = 0; i < nf; ++i) {
    const double G = ws.G[i];
    const double tol = tolerance * std::max(E.gmax[i] - E.gmin[i], 0.0);
    if (G < E.gmin[i] - tol || G > E.gmax[i] + tol) ++nx;
    ws.x[i] = E.offset + E.factor[i] * (G - E.shift[i]);
  }
  if (n_extrapolated) *n_extrapolated = nx;
  const int nl = (int)E.layers.size();
  ws.act.resize(nl + 1);
  ws.dact.resize(nl + 1);
  ws.act[0] = ws.x;
  for (int l = 0; l < nl; ++l) {
    const Layer &L = E.layers[l];
    auto &y = ws.act[l + 1];
    auto &dy = ws.dact[l + 1];
    y.resize(L.n_out);
    dy.resize(L.n_out);
    const double *yin = ws.act[l].data();
    for (int o = 0; o < L.n_out; ++o) {
      const double *w = &L.w[(size_t)o * L.n_in];
      double z = L.b[o];
      for (int i = 0; i < L.n_in; ++i) z += w[i] * yin[i];
      activation(L.act, z, y[o], dy[o]);
    }
  }
  const double e_atom = energy_scale * ws.act[nl][0] + E.e0;
  // backward through the network: delta = dE/dz per layer
  std::vector<double> delta(1, energy_scale * ws.dact[nl][0]), prev;
  for (int l = nl - 1; l >= 0; --l) {
    const Layer &L = E.layers[l];
    prev.assign(L.n_in, 0.0);
    for (int o = 0; o < L.n_out; ++o) {
      const double *w = &L.w[(size_t)o * L.n_in];
      const double d = delta[o];
      if (d == 0.0) continue;
      for (int i = 0; i < L.n_in; ++i) prev[i] += w[i] * d;
    }
    if (l > 0)
      for (int i = 0; i < L.n_in; ++i) prev[i] *= ws.dact[l][i];
    delta.swap(prev);
  }
  ws.dEdG.resize(nf);
  for (int i = 0; i < nf; ++i) ws.dEdG[i] = delta[i] * E.factor[i];

  // gradients: radial
  for (int k = 0; k < nn; ++k) {
    double s = 0.0;
    for (int fi : E.radial_by_el[nb[k].el]) {
      if (nb[k].r >= E.radial[fi].rc) break;
      s += ws.dEdG[E.radial[fi].index] * ws.rad_dR[(size_t)k * nrad + fi];
    }
    const double c = s / nb[k].r;
    for (int x = 0; x < 3; ++x) ws.grad[3 * k + x] += c * nb[k].d[x];
  }
  // gradients: moments
  if (nu) {
    const int ng = (int)E.groups.size();
    const int QS = E.mom_nmax + 1;
    ws.dQ.assign((size_t)ng * QS, 0.0);
    ws.dD.assign((size_t)nu * nel, 0.0);
    ws.dT.assign((size_t)nu * nel * NM, 0.0);
    for (int g = 0; g < ng; ++g) {
      const MomentGroup &Gr = E.groups[g];
      double *dQ = &ws.dQ[(size_t)g * QS];
      for (int fi : Gr.fns) {
        const AngularFn &a = E.angular[fi];
        const double c = ws.dEdG[a.index];
        for (size_t n = 0; n < a.coef.size(); ++n) dQ[n] += c * a.coef[n];
        ws.dD[Gr.u * nel + Gr.e1] += c * a.diag;
      }
      const double *T1 = &ws.T[((size_t)Gr.u * nel + Gr.e1) * NM];
      const double *T2 = &ws.T[((size_t)Gr.u * nel + Gr.e2) * NM];
      double *dT1 = &ws.dT[((size_t)Gr.u * nel + Gr.e1) * NM];
      double *dT2 = &ws.dT[((size_t)Gr.u * nel + Gr.e2) * NM];
      for (int n = 0; n <= Gr.nmax; ++n) {
        if (dQ[n] == 0.0) continue;
        for (int m = mono_start[n]; m < mono_start[n + 1]; ++m) {
          const double c = mono_w[m] * dQ[n];
          dT1[m] += c * T2[m];
          dT2[m] += c * T1[m];
        }
      }
    }
    // dE/d(reduced moments), then per (u, element) the coefficients of p(u) = sum_m dTr_m u^m and
    // of dp/du_b = sum_c B_b[c] u^c: each neighbour needs four dense dot products
    const int NR = red_size(E.mom_nmax);
    const int NR1 = red_size(E.mom_nmax - 1);
    const int stride = NR + 3 * NR1;
    ws.B.assign((size_t)nu * nel * stride, 0.0);
    std::vector<char> active((size_t)nu * nel, 0);
    for (int qe = 0; qe < nu * nel; ++qe) {
      const double *A = &ws.dT[(size_t)qe * NM];
      double *B = &ws.B[(size_t)qe * stride];
      bool any = ws.dD[qe] != 0.0;
      for (int m = 0; m < NM; ++m) {
        const double am = A[m];
        if (am == 0.0) continue;
        any = true;
        for (int p = lmap_start[m]; p < lmap_start[m + 1]; ++p) B[lmap_index[p]] += lmap_coef[p] * am;
      }
      if (!any) continue;
      active[qe] = 1;
      for (int m = 0; m < NR; ++m) {
        if (B[m] == 0.0) continue;
        for (int b = 0; b < 3; ++b) {
          const int lower = red_minus[3 * m + b];
          if (lower >= 0) B[NR + b * NR1 + lower] += red_pow[3 * m + b] * B[m];
        }
      }
    }
    double *mono = ws.mono.data();
    for (int k = 0; k < nn; ++k) {
      const int ek = nb[k].el;
      bool any = false;
      for (int q = 0; q < nu; ++q)
        if (active[(size_t)q * nel + ek] &&
            (ws.uR[(size_t)k * nu + q] != 0.0 || ws.udR[(size_t)k * nu + q] != 0.0))
          any = true;
      if (!any) continue;
      const double r = nb[k].r, inv = 1.0 / r;
      const double u[3] = {nb[k].d[0] * inv, nb[k].d[1] * inv, nb[k].d[2] * inv};
      fill_reduced(u, E.mom_nmax, mono);
      double gr = 0.0, v[3] = {0.0, 0.0, 0.0};    // radial part along u; gradient of p
      for (int q = 0; q < nu; ++q) {
        if (!active[(size_t)q * nel + ek]) continue;
        const double R = ws.uR[(size_t)k * nu + q], dR = ws.udR[(size_t)k * nu + q];
        if (R == 0.0 && dR == 0.0) continue;
        const double *B = &ws.B[((size_t)q * nel + ek) * stride];
        double s0 = 0.0, vx = 0.0, vy = 0.0, vz = 0.0;
        for (int m = 0; m < NR; ++m) s0 += B[m] * mono[m];
        const double *Bx = B + NR, *By = Bx + NR1, *Bz = By + NR1;
        for (int m = 0; m < NR1; ++m) {
          vx += Bx[m] * mono[m];
          vy += By[m] * mono[m];
          vz += Bz[m] * mono[m];
        }
        gr += dR * s0 + 2.0 * ws.dD[q * nel + ek] * R * dR;
        const double c = R * inv;
        v[0] += c * vx;
        v[1] += c * vy;
        v[2] += c * vz;
      }
      // d p(d/r) / dd = (grad p - (u . grad p) u) / r  (the 1/r is in v already)
      const double uv = u[0] * v[0] + u[1] * v[1] + u[2] * v[2];
      for (int x = 0; x < 3; ++x) ws.grad[3 * k + x] += gr * u[x] + v[x] - uv * u[x];
    }
  }
  if (!E.triplet_fns.empty()) triplets(true);
  return e_atom;
}

}    // namespace mdmlkit_lmp
