// armnn_run loads a TFLite model with Arm NN's TFLite parser, runs it once
// on Arm NN's reference (CpuRef) backend and writes its outputs: an
// independent reader of the files maskwatch's TFLite writer produces.
//
// Usage: armnn_run MODEL.tflite BACKENDS_DIR INPUT.f32 OUTPUT_PREFIX
//
// INPUT.f32 holds the single input's float32 values; output k is written to
// OUTPUT_PREFIX.k as float32, and one line "name d0 d1 ..." per output to
// stdout. Exit status 1 with a message on stderr for any failure.
#include <armnn/ArmNN.hpp>
#include <armnnTfLiteParser/ITfLiteParser.hpp>

#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

int main(int argc, char** argv) {
    if (argc != 5) {
        std::cerr << "usage: armnn_run MODEL BACKENDS_DIR INPUT OUTPUT_PREFIX\n";
        return 2;
    }
    try {
        auto parser = armnnTfLiteParser::ITfLiteParser::Create();
        armnn::INetworkPtr network = parser->CreateNetworkFromBinaryFile(argv[1]);

        armnn::IRuntime::CreationOptions options;
        options.m_DynamicBackendsPath = argv[2];
        armnn::IRuntimePtr runtime = armnn::IRuntime::Create(options);
        std::vector<std::string> messages;
        armnn::IOptimizedNetworkPtr optimized = armnn::Optimize(
            *network, {armnn::Compute::CpuRef}, runtime->GetDeviceSpec(),
            armnn::OptimizerOptionsOpaque(),
            armnn::Optional<std::vector<std::string>&>(messages));
        if (!optimized) {
            for (const auto& m : messages) std::cerr << m << "\n";
            std::cerr << "armnn_run: the network does not optimise for CpuRef\n";
            return 1;
        }
        armnn::NetworkId id;
        std::string error;
        armnn::INetworkProperties properties(false, armnn::MemorySource::Undefined,
                                             armnn::MemorySource::Undefined);
        if (runtime->LoadNetwork(id, std::move(optimized), error, properties) !=
            armnn::Status::Success) {
            std::cerr << "armnn_run: load: " << error << "\n";
            return 1;
        }

        auto inputNames = parser->GetSubgraphInputTensorNames(0);
        auto outputNames = parser->GetSubgraphOutputTensorNames(0);
        if (inputNames.size() != 1) {
            std::cerr << "armnn_run: " << inputNames.size() << " inputs, want 1\n";
            return 1;
        }
        auto in = parser->GetNetworkInputBindingInfo(0, inputNames[0]);
        std::ifstream inFile(argv[3], std::ios::binary);
        std::vector<char> raw((std::istreambuf_iterator<char>(inFile)),
                              std::istreambuf_iterator<char>());
        if (raw.size() != in.second.GetNumBytes()) {
            std::cerr << "armnn_run: input of " << raw.size() << " bytes, the model takes "
                      << in.second.GetNumBytes() << "\n";
            return 1;
        }
        armnn::TensorInfo inInfo = in.second;
        inInfo.SetConstant(true);
        armnn::InputTensors inputs{{in.first, armnn::ConstTensor(inInfo, raw.data())}};

        std::vector<std::vector<float>> outData(outputNames.size());
        armnn::OutputTensors outputs;
        for (size_t k = 0; k < outputNames.size(); k++) {
            auto out = parser->GetNetworkOutputBindingInfo(0, outputNames[k]);
            outData[k].resize(out.second.GetNumElements());
            outputs.push_back({out.first, armnn::Tensor(out.second, outData[k].data())});
            std::cout << outputNames[k];
            for (unsigned d = 0; d < out.second.GetNumDimensions(); d++) {
                std::cout << " " << out.second.GetShape()[d];
            }
            std::cout << "\n";
        }
        if (runtime->EnqueueWorkload(id, inputs, outputs) != armnn::Status::Success) {
            std::cerr << "armnn_run: the workload failed\n";
            return 1;
        }
        for (size_t k = 0; k < outData.size(); k++) {
            std::ofstream f(std::string(argv[4]) + "." + std::to_string(k), std::ios::binary);
            f.write(reinterpret_cast<const char*>(outData[k].data()),
                    outData[k].size() * sizeof(float));
        }
    } catch (const std::exception& e) {
        std::cerr << "armnn_run: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
