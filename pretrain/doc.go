// Package pretrain holds unsupervised pretraining and semi-supervised learning on top of nn and
// nn/train: autoencoders (plain, denoising, sparse; tied or untied decoders; on images
// (AutoencoderConfig.InputShape) convolutional, with a decoder of upsample and conv layers
// that mirrors the conv and pooling encoder) whose encoder is transferred into a supervised
// model, masked-column pretraining of categorical embeddings,
// the transfer helpers themselves (InitFrom, SupervisedSpec, freezing and gradual unfreezing,
// the fine-tuning schedule), and pseudo-labelling / self-training (Lee 2013; SelfTrain can
// restart every round from the starting weights, average the teacher's predictions over
// augmented views and over rounds, and keep the round of best validation accuracy: see
// PseudoLabelOptions).
//
// Resume: TrainAutoencoder and PretrainEmbeddings take epoch checkpoints through hooks in
// train.Config.Hooks and continue from one with train.Config.Resume; SelfTrainWith hands out
// the state after every round (SelfTrainState, with a versioned binary form) and the epoch
// checkpoints of the round in progress, and continues from them. A resumed run ends with the
// weights and report of an uninterrupted one, bit for bit.
//
// The package works on train.Dataset views and nn types only: it knows nothing of Arrow or of
// the pipeline engine, which builds its stages on top of it.
//
// Layer names are the contract between pretraining and transfer: the encoder's layers are
// named enc_1, enc_2, ... (one per LayerSpec of AutoencoderConfig.Encoder, unless the spec
// names them), embedding tables keep their EmbeddingSpec names, and InitFrom copies exactly
// the tensors of those layers into a model that has layers of the same names (SupervisedSpec
// builds such a model's spec).
//
// Randomness: every function takes its seed through train.Config.Seed (and nn.Build's
// *rand.Rand); there is no global random state.
package pretrain
