// A C++ program on libgeomops' C API: read a PLY point cloud, find the neighbors of every point
// within a radius, run one continuous convolution over them and write the points with their
// output features as an ASCII PLY.
//
//   ply_conv INPUT.ply OUTPUT.ply [RADIUS (default 0.15)] [THREADS (default 0: all cores)]
//
// The input is an ASCII or binary little-endian PLY whose "vertex" element has float or double
// x, y, z properties (any other properties and elements, list properties included, are skipped).
// Input features are (x, y, z, 1); the filters are a fixed [3, 3, 3, 4, 8] pattern (value
// ((i * 37) % 101) / 101 - 0.5 at flat index i); the filter extent is 2 * RADIUS. The output has
// the properties x, y, z, f0 .. f7.
//
// Build: see examples/c/CMakeLists.txt (find_package(geomops)).
#include <geomops/geomops.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

// Turns a failing geomops status into an exception carrying geomops_last_error().
void check(geomops_status status, const char* what) {
    if (status != GEOMOPS_OK)
        throw std::runtime_error(std::string(what) + ": " + geomops_status_string(status) + ": " +
                                 geomops_last_error());
}

// ---- a small PLY reader -------------------------------------------------------------------------

struct PlyProperty {
    std::string name, type;
    bool is_list = false;
    std::string count_type;  // list properties: type of the element count
};

struct PlyElement {
    std::string name;
    int64_t count = 0;
    std::vector<PlyProperty> properties;
};

size_t type_size(const std::string& t) {
    if (t == "char" || t == "uchar" || t == "int8" || t == "uint8") return 1;
    if (t == "short" || t == "ushort" || t == "int16" || t == "uint16") return 2;
    if (t == "int" || t == "uint" || t == "float" || t == "int32" || t == "uint32" || t == "float32")
        return 4;
    if (t == "double" || t == "float64") return 8;
    throw std::runtime_error("PLY: unknown property type '" + t + "'");
}

// A little-endian binary value of PLY type `t` as a double.
double read_binary(std::istream& in, const std::string& t) {
    unsigned char b[8] = {0};
    const size_t n = type_size(t);
    if (!in.read(reinterpret_cast<char*>(b), static_cast<std::streamsize>(n)))
        throw std::runtime_error("PLY: the file ends inside the binary data");
    uint64_t u = 0;
    for (size_t i = 0; i < n; ++i) u |= static_cast<uint64_t>(b[i]) << (8 * i);
    if (t == "float" || t == "float32") {
        uint32_t w = static_cast<uint32_t>(u);
        float f;
        std::memcpy(&f, &w, 4);
        return f;
    }
    if (t == "double" || t == "float64") {
        double d;
        std::memcpy(&d, &u, 8);
        return d;
    }
    const bool is_signed =
        t == "char" || t == "int8" || t == "short" || t == "int16" || t == "int" || t == "int32";
    if (is_signed && n < 8 && (u >> (8 * n - 1)) & 1) u |= ~uint64_t(0) << (8 * n);  // sign-extend
    return is_signed ? static_cast<double>(static_cast<int64_t>(u)) : static_cast<double>(u);
}

// The x, y, z coordinates of the vertex element, as float32 [N, 3].
std::vector<float> read_ply_points(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open " + path);
    std::string line;
    std::getline(in, line);
    if (line.compare(0, 3, "ply") != 0) throw std::runtime_error(path + " is not a PLY file");
    bool binary = false;
    std::vector<PlyElement> elements;
    while (std::getline(in, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        std::istringstream words(line);
        std::string key;
        words >> key;
        if (key == "format") {
            std::string fmt;
            words >> fmt;
            if (fmt == "binary_little_endian")
                binary = true;
            else if (fmt != "ascii")
                throw std::runtime_error("PLY: format '" + fmt +
                                         "' is not supported (ascii, binary_little_endian)");
        } else if (key == "element") {
            PlyElement e;
            words >> e.name >> e.count;
            elements.push_back(e);
        } else if (key == "property") {
            if (elements.empty()) throw std::runtime_error("PLY: a property before any element");
            PlyProperty p;
            words >> p.type;
            if (p.type == "list") {
                p.is_list = true;
                words >> p.count_type >> p.type;
            }
            words >> p.name;
            elements.back().properties.push_back(p);
        } else if (key == "end_header") {
            break;
        }
    }
    std::vector<float> points;
    for (const PlyElement& e : elements) {
        const bool vertex = e.name == "vertex";
        int axis[3] = {-1, -1, -1};
        for (size_t i = 0; i < e.properties.size(); ++i)
            for (int a = 0; a < 3; ++a)
                if (vertex && !e.properties[i].is_list && e.properties[i].name == std::string(1, "xyz"[a]))
                    axis[a] = static_cast<int>(i);
        if (vertex && (axis[0] < 0 || axis[1] < 0 || axis[2] < 0))
            throw std::runtime_error("PLY: the vertex element has no x, y and z properties");
        if (vertex) points.resize(static_cast<size_t>(e.count) * 3);
        std::vector<double> values(e.properties.size());
        for (int64_t r = 0; r < e.count; ++r) {
            for (size_t i = 0; i < e.properties.size(); ++i) {
                const PlyProperty& p = e.properties[i];
                if (binary) {
                    const int64_t n = p.is_list ? static_cast<int64_t>(read_binary(in, p.count_type)) : 1;
                    for (int64_t k = 0; k < n; ++k) values[i] = read_binary(in, p.type);
                } else {
                    double v = 0;
                    if (!(in >> v)) throw std::runtime_error("PLY: the file ends inside the ASCII data");
                    for (int64_t k = 0, n = p.is_list ? static_cast<int64_t>(v) : 0; k < n; ++k)
                        in >> values[i];
                    if (!p.is_list) values[i] = v;
                }
            }
            if (vertex)
                for (int a = 0; a < 3; ++a)
                    points[static_cast<size_t>(r) * 3 + a] = static_cast<float>(values[axis[a]]);
        }
        if (vertex) return points;  // later elements (faces) are not needed
    }
    throw std::runtime_error("PLY: no vertex element in " + path);
}

void write_result(const std::string& path, const std::vector<float>& points,
                  const std::vector<float>& features, int channels) {
    FILE* f = std::fopen(path.c_str(), "w");
    if (!f) throw std::runtime_error("cannot write " + path);
    const size_t n = points.size() / 3;
    std::fprintf(f,
                 "ply\nformat ascii 1.0\ncomment geomops continuous_conv output (examples/c/ply_conv.cpp)\n");
    std::fprintf(f, "element vertex %zu\nproperty float x\nproperty float y\nproperty float z\n", n);
    for (int c = 0; c < channels; ++c) std::fprintf(f, "property float f%d\n", c);
    std::fprintf(f, "end_header\n");
    for (size_t i = 0; i < n; ++i) {
        std::fprintf(f, "%.9g %.9g %.9g", points[3 * i], points[3 * i + 1], points[3 * i + 2]);
        for (int c = 0; c < channels; ++c) std::fprintf(f, " %.9g", features[i * channels + c]);
        std::fprintf(f, "\n");
    }
    std::fclose(f);
}

// The search handle, freed on every path.
struct SearchDeleter {
    void operator()(geomops_search* s) const { geomops_search_free(s); }
};
using SearchPtr = std::unique_ptr<geomops_search, SearchDeleter>;

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        std::cerr << "usage: " << argv[0] << " INPUT.ply OUTPUT.ply [RADIUS] [THREADS]\n";
        return 2;
    }
    const double radius = argc > 3 ? std::atof(argv[3]) : 0.15;
    try {
        std::vector<float> points = read_ply_points(argv[1]);
        const int64_t n = static_cast<int64_t>(points.size() / 3);
        geomops_exec exec = GEOMOPS_EXEC_INIT;
        exec.num_threads = argc > 4 ? std::atoi(argv[4]) : 0;

        // 1. neighbors within `radius` of every point: count, then fill
        geomops_fixed_radius_args search = GEOMOPS_FIXED_RADIUS_ARGS_INIT;
        search.dtype = GEOMOPS_FLOAT32;
        search.num_points = n;
        search.points = points.data();
        search.num_queries = n;
        search.queries = points.data();
        search.radius = radius;
        std::vector<int64_t> row_splits(static_cast<size_t>(n) + 1);
        geomops_search* raw = nullptr;
        check(geomops_fixed_radius_search(&exec, &search, row_splits.data(), &raw),
              "geomops_fixed_radius_search");
        SearchPtr handle(raw);
        int64_t total = 0;
        check(geomops_search_total(handle.get(), &total), "geomops_search_total");
        std::vector<int32_t> neighbors(static_cast<size_t>(total));
        check(geomops_search_fill(handle.get(), neighbors.data(), nullptr), "geomops_search_fill");

        // 2. one continuous convolution: features (x, y, z, 1) -> 8 channels
        const int cin = 4, cout = 8;
        std::vector<float> features(static_cast<size_t>(n) * cin);
        for (int64_t i = 0; i < n; ++i) {
            for (int a = 0; a < 3; ++a) features[i * cin + a] = points[i * 3 + a];
            features[i * cin + 3] = 1.0f;
        }
        std::vector<float> filters(3 * 3 * 3 * cin * cout);
        for (size_t i = 0; i < filters.size(); ++i)
            filters[i] = static_cast<float>((i * 37) % 101) / 101.0f - 0.5f;
        const float extent = static_cast<float>(2 * radius);
        const float offset[3] = {0, 0, 0};
        geomops_cconv_args conv = GEOMOPS_CCONV_ARGS_INIT;
        conv.dtype = GEOMOPS_FLOAT32;
        conv.index_type = GEOMOPS_INT32;
        conv.filter_depth = conv.filter_height = conv.filter_width = 3;
        conv.in_channels = cin;
        conv.out_channels = cout;
        conv.num_out = conv.num_inp = n;
        conv.num_neighbors = total;
        conv.filters = filters.data();
        conv.out_positions = points.data();
        conv.extents = &extent;  // [1, 1]: shared and isotropic
        conv.offset = offset;
        conv.inp_positions = points.data();
        conv.inp_features = features.data();
        conv.neighbors_index = neighbors.data();
        conv.neighbors_row_splits = row_splits.data();
        std::vector<float> out(static_cast<size_t>(n) * cout);
        check(geomops_continuous_conv(&exec, &conv, nullptr, out.data()), "geomops_continuous_conv");

        write_result(argv[2], points, out, cout);
        std::cout << "ply_conv: " << n << " points, " << total << " neighbor entries (radius " << radius
                  << "), wrote " << argv[2] << " with libgeomops " << geomops_version_string() << "\n";
    } catch (const std::exception& e) {
        std::cerr << "ply_conv: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
