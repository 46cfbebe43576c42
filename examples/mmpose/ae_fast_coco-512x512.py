# mmpose 1.x config: associative embedding on COCO with a working training pipeline,
# this library's codec (FastAssociativeEmbedding) and loss (FastAssociativeEmbeddingLoss).
# Train: `python tools/train.py <this file>` from an mmpose checkout, or
# `Runner.from_cfg(Config.fromfile(<this file>)).train()` (see README.md beside it).
#
# It is mmpose 1.3.2's ae_hrnet-w32_8xb24-300e_coco-512x512.py together with its
# _base_/default_runtime.py, written out here: mmengine resolves an "mmpose::" _base_
# through pkg_resources, which setuptools >= 81 no longer ships. Everything below is as
# shipped (HRNet-W32 with ImageNet-pretrained weights, AssociativeEmbeddingHead with 17
# joints and 1-D tags, 512 x 512 input, 128 x 128 heatmaps, sigma 2, Adam 1.5e-3 for 300
# epochs, flip test with the maps restored to the input size, CocoMetric without NMS),
# except the lines marked CHANGED:
#
# 1. custom_imports: registers the codec and the loss of associative_embedding.mmpose;
# 2. codec type "FastAssociativeEmbedding" (same arguments; mmpose 1.3.2's results with the
#    default grouping="mmpose-1.x", grouping="crowd" for this library's crowd grouping);
#    it also packs the keypoint indices the head's loss reads;
# 3. tag loss type "FastAssociativeEmbeddingLoss" (mmpose's values, vectorised);
# 4. keypoint loss "BottomupHeatmapMSELoss" (registered by the same module): mmpose 1.3.2's
#    head hands its keypoint loss the per-person keypoint weights of the batch, shape
#    (sum of N_i, K), and KeypointMSELoss uses them even with use_target_weight=False and
#    stops unless they have shape (B, K); this is KeypointMSELoss without them, the heatmap
#    mask (crowds, people without keypoints) still applies;
# 5. train_pipeline: shipped empty; here mmpose's own bottom-up transforms.

custom_imports = dict(
    imports=["associative_embedding.mmpose"], allow_failed_imports=False
)  # CHANGED

# --- runtime (_base_/default_runtime.py) ---------------------------------------------------
default_scope = "mmpose"
default_hooks = dict(
    timer=dict(type="IterTimerHook"),
    logger=dict(type="LoggerHook", interval=50),
    param_scheduler=dict(type="ParamSchedulerHook"),
    checkpoint=dict(type="CheckpointHook", interval=50, save_best="coco/AP", rule="greater"),
    sampler_seed=dict(type="DistSamplerSeedHook"),
    visualization=dict(type="PoseVisualizationHook", enable=False),
    badcase=dict(
        type="BadCaseAnalysisHook",
        enable=False,
        out_dir="badcase",
        metric_type="loss",
        badcase_thr=5,
    ),
)
custom_hooks = [dict(type="SyncBuffersHook")]
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method="fork", opencv_num_threads=0),
    dist_cfg=dict(backend="nccl"),
)
vis_backends = [dict(type="LocalVisBackend")]
visualizer = dict(type="PoseLocalVisualizer", vis_backends=vis_backends, name="visualizer")
log_processor = dict(type="LogProcessor", window_size=50, by_epoch=True, num_digits=6)
log_level = "INFO"
load_from = None
resume = False
backend_args = dict(backend="local")
val_cfg = dict()
test_cfg = dict()

# --- schedule --------------------------------------------------------------------------------
train_cfg = dict(by_epoch=True, max_epochs=300, val_interval=10)
optim_wrapper = dict(optimizer=dict(type="Adam", lr=1.5e-3))
param_scheduler = [
    dict(type="LinearLR", begin=0, end=500, start_factor=0.001, by_epoch=False),  # warm-up
    dict(type="MultiStepLR", begin=0, end=300, milestones=[200, 260], gamma=0.1, by_epoch=True),
]
auto_scale_lr = dict(base_batch_size=192)

# --- codec -----------------------------------------------------------------------------------
codec = dict(
    type="FastAssociativeEmbedding",  # CHANGED (mmpose: "AssociativeEmbedding")
    input_size=(512, 512),
    heatmap_size=(128, 128),
    sigma=2,
    decode_topk=30,
    decode_center_shift=0.5,
    decode_keypoint_order=[0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13, 14, 15, 16],
    decode_max_instances=30,
    grouping="mmpose-1.x",  # CHANGED (new argument; the default)
)

# --- model -----------------------------------------------------------------------------------
model = dict(
    type="BottomupPoseEstimator",
    data_preprocessor=dict(
        type="PoseDataPreprocessor",
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
    ),
    backbone=dict(
        type="HRNet",
        in_channels=3,
        extra=dict(
            stage1=dict(
                num_modules=1,
                num_branches=1,
                block="BOTTLENECK",
                num_blocks=(4,),
                num_channels=(64,),
            ),
            stage2=dict(
                num_modules=1,
                num_branches=2,
                block="BASIC",
                num_blocks=(4, 4),
                num_channels=(32, 64),
            ),
            stage3=dict(
                num_modules=4,
                num_branches=3,
                block="BASIC",
                num_blocks=(4, 4, 4),
                num_channels=(32, 64, 128),
            ),
            stage4=dict(
                num_modules=3,
                num_branches=4,
                block="BASIC",
                num_blocks=(4, 4, 4, 4),
                num_channels=(32, 64, 128, 256),
            ),
        ),
        init_cfg=dict(
            type="Pretrained",
            checkpoint="https://download.openmmlab.com/mmpose/"
            "pretrain_models/hrnet_w32-36af842e.pth",
        ),
    ),
    head=dict(
        type="AssociativeEmbeddingHead",
        in_channels=32,
        num_keypoints=17,
        tag_dim=1,
        tag_per_keypoint=True,
        deconv_out_channels=None,
        # CHANGED (mmpose: dict(type="KeypointMSELoss", use_target_weight=True))
        keypoint_loss=dict(type="BottomupHeatmapMSELoss"),
        tag_loss=dict(
            type="FastAssociativeEmbeddingLoss",  # CHANGED (mmpose: "AssociativeEmbeddingLoss")
            loss_weight=0.001,
        ),
        # the heatmaps are resized to the input size before decoding (restore_heatmap_size)
        decoder=dict(codec, heatmap_size=codec["input_size"]),
    ),
    test_cfg=dict(
        multiscale_test=False,
        flip_test=True,
        shift_heatmap=False,
        restore_heatmap_size=True,
        align_corners=False,
    ),
)

# --- data ------------------------------------------------------------------------------------
dataset_type = "CocoDataset"
data_mode = "bottomup"
data_root = "data/coco/"

train_pipeline = [  # CHANGED (mmpose: [])
    dict(type="LoadImage"),
    dict(type="BottomupRandomAffine", input_size=codec["input_size"]),
    dict(type="RandomFlip", direction="horizontal"),
    dict(type="GenerateTarget", encoder=codec),
    dict(type="BottomupGetHeatmapMask"),
    dict(type="PackPoseInputs"),
]
val_pipeline = [
    dict(type="LoadImage"),
    dict(
        type="BottomupResize", input_size=codec["input_size"], size_factor=64, resize_mode="expand"
    ),
    dict(
        type="PackPoseInputs",
        meta_keys=(
            "id",
            "img_id",
            "img_path",
            "crowd_index",
            "ori_shape",
            "img_shape",
            "input_size",
            "input_center",
            "input_scale",
            "flip",
            "flip_direction",
            "flip_indices",
            "raw_ann_info",
            "skeleton_links",
        ),
    ),
]

train_dataloader = dict(
    batch_size=24,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_mode=data_mode,
        ann_file="annotations/person_keypoints_train2017.json",
        data_prefix=dict(img="train2017/"),
        pipeline=train_pipeline,
    ),
)
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type="DefaultSampler", shuffle=False, round_up=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_mode=data_mode,
        ann_file="annotations/person_keypoints_val2017.json",
        data_prefix=dict(img="val2017/"),
        test_mode=True,
        pipeline=val_pipeline,
    ),
)
test_dataloader = val_dataloader

val_evaluator = dict(
    type="CocoMetric",
    ann_file=data_root + "annotations/person_keypoints_val2017.json",
    nms_mode="none",
    score_mode="bbox",
)
test_evaluator = val_evaluator
